using System.Globalization;

namespace Trellis.LoadGen;

/// <summary>
/// The share of CPU time the hypervisor gave to other guests ("steal", the eighth value of the
/// <c>cpu</c> line in /proc/stat). On a shared VM a step measured while the host took a quarter of
/// the CPU says more about the host than about the broker under test.
/// </summary>
internal sealed class HostSteal
{
    private (long Steal, long Total) _last = Read();

    /// <summary>Steal as a percentage of all CPU time since the previous call (or since construction).</summary>
    public double SincePreviousPct()
    {
        var now = Read();
        var total = now.Total - _last.Total;
        var steal = now.Steal - _last.Steal;
        _last = now;
        return total <= 0 ? 0 : Math.Round(100.0 * steal / total, 1);
    }

    private static (long Steal, long Total) Read()
    {
        // cpu  user nice system idle iowait irq softirq steal guest guest_nice
        var line = File.ReadLines("/proc/stat").First(l => l.StartsWith("cpu ", StringComparison.Ordinal));
        var values = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8).Select(v => long.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        return (values.Length == 8 ? values[7] : 0, values.Sum());
    }
}
