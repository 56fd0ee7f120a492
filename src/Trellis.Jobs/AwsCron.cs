using System.Globalization;
using Trellis.Core.Errors;

namespace Trellis.Jobs;

/// <summary>
/// AWS's cron expressions as maintenance windows use them: <c>cron(Minutes Hours Day-of-month Month
/// Day-of-week Year)</c> in UTC, with <c>*</c>, <c>?</c>, lists, ranges, steps, month names
/// (JAN-DEC) and day names (SUN-SAT, or 1-7 from Sunday). <c>L</c>, <c>W</c> and <c>#</c> are refused
/// by name. A day matches when both day fields match (one of them is <c>?</c> in AWS's syntax).
/// </summary>
public sealed class AwsCron
{
    private static readonly string[] Months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
    private static readonly string[] Days = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    private readonly bool[] _minutes;
    private readonly bool[] _hours;
    private readonly bool[] _daysOfMonth;
    private readonly bool[] _months;
    private readonly bool[] _daysOfWeek;
    private readonly bool[] _years;

    private AwsCron(bool[][] fields)
    {
        (_minutes, _hours, _daysOfMonth, _months, _daysOfWeek, _years) = (fields[0], fields[1], fields[2], fields[3], fields[4], fields[5]);
    }

    public static Result<AwsCron> Parse(string expression)
    {
        ArgumentNullException.ThrowIfNull(expression);
        var text = expression.Trim();
        if (!text.StartsWith("cron(", StringComparison.Ordinal) || !text.EndsWith(')'))
        {
            return Invalid(expression, "write it as cron(Minutes Hours Day-of-month Month Day-of-week Year)");
        }

        var parts = text[5..^1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length != 6)
        {
            return Invalid(expression, $"it has {parts.Length} fields, not the 6 AWS's cron takes");
        }

        (int Min, int Max, string[]? Names, int NameBase)[] ranges = [(0, 59, null, 0), (0, 23, null, 0), (1, 31, null, 0), (1, 12, Months, 1), (1, 7, Days, 1), (1970, 2199, null, 0)];
        var fields = new bool[6][];
        for (var i = 0; i < 6; i++)
        {
            var (min, max, names, nameBase) = ranges[i];
            var set = new bool[max + 1];
            foreach (var item in parts[i].Split(','))
            {
                if (item.IndexOfAny(['L', 'W', '#']) >= 0 && (names is null || !names.Any(n => item.Contains(n, StringComparison.OrdinalIgnoreCase))))
                {
                    return Invalid(expression, $"'{item}' uses L, W or #, which Trellis's maintenance windows do not support");
                }

                if (!TryItem(item, min, max, names, nameBase, set, i is 2 or 4))
                {
                    return Invalid(expression, $"'{item}' is not a value, range or step within {min}-{max}");
                }
            }

            fields[i] = set;
        }

        return new AwsCron(fields);
    }

    /// <summary>Whether a window starts at the minute <paramref name="utc"/> falls in.</summary>
    public bool StartsAt(DateTimeOffset utc)
    {
        var t = utc.UtcDateTime;
        return t.Year < _years.Length && _years[t.Year] && _months[t.Month] && _daysOfMonth[t.Day] && _daysOfWeek[(int)t.DayOfWeek + 1] && _hours[t.Hour] && _minutes[t.Minute];
    }

    /// <summary>The start of a window open at <paramref name="now"/> (started within <paramref name="duration"/> before it), if any.</summary>
    public DateTimeOffset? OpenAt(DateTimeOffset now, TimeSpan duration)
    {
        var minute = Truncate(now);
        for (var back = TimeSpan.Zero; back < duration; back += TimeSpan.FromMinutes(1))
        {
            if (StartsAt(minute - back) && minute - back + duration > now)
            {
                return minute - back;
            }
        }

        return null;
    }

    /// <summary>The next window start after <paramref name="now"/>, looking ahead up to <paramref name="horizon"/>.</summary>
    public DateTimeOffset? Next(DateTimeOffset now, TimeSpan horizon)
    {
        var minute = Truncate(now).AddMinutes(1);
        var end = now + horizon;
        while (minute <= end)
        {
            var t = minute.UtcDateTime;
            if (!(t.Year < _years.Length && _years[t.Year] && _months[t.Month] && _daysOfMonth[t.Day] && _daysOfWeek[(int)t.DayOfWeek + 1]))
            {
                minute = new DateTimeOffset(t.Date.AddDays(1), TimeSpan.Zero); // not this day: skip to the next
                continue;
            }

            if (StartsAt(minute))
            {
                return minute;
            }

            minute = minute.AddMinutes(1);
        }

        return null;
    }

    private static DateTimeOffset Truncate(DateTimeOffset t) => new(t.UtcDateTime.Year, t.UtcDateTime.Month, t.UtcDateTime.Day, t.UtcDateTime.Hour, t.UtcDateTime.Minute, 0, TimeSpan.Zero);

    private static bool TryItem(string item, int min, int max, string[]? names, int nameBase, bool[] set, bool questionAllowed)
    {
        if (item is "*" || (item is "?" && questionAllowed))
        {
            Array.Fill(set, true, min, max - min + 1);
            return true;
        }

        var step = 1;
        var rangeText = item;
        var slash = item.IndexOf('/', StringComparison.Ordinal);
        if (slash >= 0)
        {
            if (!int.TryParse(item[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out step) || step < 1)
            {
                return false;
            }

            rangeText = item[..slash];
        }

        int from, to;
        if (rangeText is "*")
        {
            (from, to) = (min, max);
        }
        else
        {
            var dash = rangeText.IndexOf('-', StringComparison.Ordinal);
            if (!TryValue(dash < 0 ? rangeText : rangeText[..dash], names, nameBase, out from))
            {
                return false;
            }

            to = from;
            if (dash >= 0 && !TryValue(rangeText[(dash + 1)..], names, nameBase, out to))
            {
                return false;
            }

            if (slash >= 0 && dash < 0)
            {
                to = max; // "5/15": from 5 on, every 15
            }
        }

        if (from < min || to > max || from > to)
        {
            return false;
        }

        for (var v = from; v <= to; v += step)
        {
            set[v] = true;
        }

        return true;
    }

    private static bool TryValue(string text, string[]? names, int nameBase, out int value)
    {
        if (names is not null && Array.FindIndex(names, n => n.Equals(text, StringComparison.OrdinalIgnoreCase)) is var index and >= 0)
        {
            value = index + nameBase;
            return true;
        }

        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }

    private static TrellisError.InvalidRequest Invalid(string expression, string why) =>
        new($"Maintenance window startTime '{expression}' is not a cron expression Trellis can run: {why}. Example: cron(0 2 ? * SUN *) for 02:00 UTC each Sunday.");
}
