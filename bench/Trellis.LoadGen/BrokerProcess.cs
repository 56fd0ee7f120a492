using System.Globalization;

namespace Trellis.LoadGen;

/// <summary>
/// CPU and memory of the broker process from /proc. CPU comes from per-thread schedstat (time on
/// CPU in ns), which stays accurate under bursty loopback load where /proc/stat misreports.
/// </summary>
internal sealed class BrokerProcess(int pid)
{
    private Dictionary<string, long> _threads = [];

    /// <summary>
    /// CPU time used since the previous call, summed per thread: threads that appeared count from
    /// zero, threads that ended between calls lose only their last slice (never a negative total).
    /// </summary>
    public long CpuNanoseconds()
    {
        var now = new Dictionary<string, long>();
        foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            try
            {
                var fields = File.ReadAllText(Path.Combine(task, "schedstat")).Split(' ');
                now[Path.GetFileName(task)] = long.Parse(fields[0], CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
                // the thread ended between listing and reading
            }
        }

        long delta = 0;
        foreach (var (tid, ns) in now)
        {
            delta += Math.Max(0, ns - _threads.GetValueOrDefault(tid));
        }

        _threads = now;
        return delta;
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
