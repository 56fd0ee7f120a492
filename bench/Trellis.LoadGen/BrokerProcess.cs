using System.Globalization;

namespace Trellis.LoadGen;

/// <summary>
/// CPU and memory of the broker process from /proc. CPU comes from per-thread schedstat (time on
/// CPU in ns), which stays accurate under bursty loopback load where /proc/stat misreports.
/// </summary>
internal sealed class BrokerProcess(int pid)
{
    public long CpuNanoseconds()
    {
        long total = 0;
        foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            try
            {
                var fields = File.ReadAllText(Path.Combine(task, "schedstat")).Split(' ');
                total += long.Parse(fields[0], CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
                // the thread ended between listing and reading
            }
        }

        return total;
    }

    public long RssKiB()
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }
}
