using System.Globalization;
using System.Text.Json.Nodes;

namespace Trellis.Simulator;

/// <summary>The three use cases <c>trellis simulate --profile</c> knows.</summary>
public static class Profiles
{
    public static readonly string[] Names = ["smart-city", "industrial", "healthcare"];

    /// <summary>The device number <paramref name="index"/> of a profile's fleet.</summary>
    public static SimulatedDevice Create(string profile, int index, string thing, int? intervalMs = null)
    {
        var random = new Random(HashCode.Combine(profile, index));
        return profile switch
        {
            "smart-city" => (index % 4) switch
            {
                0 => new TrafficCounter(thing, random, intervalMs ?? 10_000),
                1 => new ParkingSensor(thing, random, intervalMs ?? 30_000),
                2 => new StreetLight(thing, random, intervalMs ?? 30_000),
                _ => new AirQualityStation(thing, random, intervalMs ?? 15_000),
            },
            "industrial" => new Machine(thing, random, intervalMs ?? 2_000, faulty: index % 20 == 7),
            "healthcare" => new Wearable(thing, random, intervalMs ?? 5_000),
            _ => throw new ArgumentException($"profile '{profile}' is not one of {string.Join(", ", Names)}", nameof(profile)),
        };
    }
}

/// <summary>Vehicles per minute with morning and evening rush hours; speed drops as traffic thickens.</summary>
internal sealed class TrafficCounter(string thing, Random random, int intervalMs) : SimulatedDevice(thing, random, intervalMs)
{
    public override string Kind => "trafficCounter";

    public override JsonObject Sample(DateTimeOffset now)
    {
        var hour = HourOf(now);
        var rush = (90 * Math.Exp(-Math.Pow(hour - 8, 2) / 1.5)) + (110 * Math.Exp(-Math.Pow(hour - 17.5, 2) / 2));
        var night = hour is < 5 or > 23 ? 0.2 : 1;
        var vehicles = Math.Max(0, ((15 * night) + rush + Noise(5)));
        return new JsonObject
        {
            ["vehiclesPerMinute"] = Round(vehicles, 0),
            ["avgSpeedKmh"] = Round(Math.Clamp(50 - (vehicles * 0.25) + Noise(3), 5, 60), 1),
        };
    }
}

/// <summary>A car park of 200 spaces: full in office hours, empty at night.</summary>
internal sealed class ParkingSensor(string thing, Random random, int intervalMs) : SimulatedDevice(thing, random, intervalMs)
{
    private const int Capacity = 200;

    public override string Kind => "parking";

    public override JsonObject Sample(DateTimeOffset now)
    {
        var hour = HourOf(now);
        var load = 0.1 + (0.8 * Math.Exp(-Math.Pow(hour - 13, 2) / 12));
        var occupied = (int)Math.Clamp((Capacity * load) + Noise(6), 0, Capacity);
        return new JsonObject { ["occupied"] = occupied, ["capacity"] = Capacity, ["occupancyPct"] = Round(100.0 * occupied / Capacity, 1) };
    }
}

/// <summary>A street light that follows the on/off schedule and brightness its shadow desires.</summary>
internal sealed class StreetLight(string thing, Random random, int intervalMs) : SimulatedDevice(thing, random, intervalMs)
{
    private TimeSpan _on = new(18, 0, 0);
    private TimeSpan _off = new(6, 0, 0);
    private int _brightness = 80;

    public override string Kind => "streetLight";

    public bool IsOn(DateTimeOffset now)
    {
        var t = now.ToLocalTime().TimeOfDay;
        return _on <= _off ? t >= _on && t < _off : t >= _on || t < _off;
    }

    public override JsonObject Sample(DateTimeOffset now)
    {
        var on = IsOn(now);
        return new JsonObject { ["lamp"] = on, ["brightnessPct"] = on ? _brightness : 0, ["powerW"] = on ? Round((1.2 * _brightness) + Noise(1.5), 1) : Round(Math.Abs(Noise(0.2)), 2) };
    }

    public override JsonObject Reported()
    {
        var reported = base.Reported();
        reported["schedule"] = new JsonObject { ["on"] = _on.ToString(@"hh\:mm", CultureInfo.InvariantCulture), ["off"] = _off.ToString(@"hh\:mm", CultureInfo.InvariantCulture) };
        reported["brightnessPct"] = _brightness;
        return reported;
    }

    public override JsonObject Apply(JsonObject delta)
    {
        var applied = base.Apply(delta);
        if (delta["schedule"] is JsonObject schedule)
        {
            if (schedule["on"]?.GetValue<string>() is { } on && TimeSpan.TryParseExact(on, @"hh\:mm", CultureInfo.InvariantCulture, out var onAt))
            {
                _on = onAt;
            }

            if (schedule["off"]?.GetValue<string>() is { } off && TimeSpan.TryParseExact(off, @"hh\:mm", CultureInfo.InvariantCulture, out var offAt))
            {
                _off = offAt;
            }

            applied["schedule"] = new JsonObject { ["on"] = _on.ToString(@"hh\:mm", CultureInfo.InvariantCulture), ["off"] = _off.ToString(@"hh\:mm", CultureInfo.InvariantCulture) };
        }

        if (delta["brightnessPct"] is JsonValue b && b.TryGetValue<int>(out var brightness) && brightness is >= 0 and <= 100)
        {
            _brightness = brightness;
            applied["brightnessPct"] = brightness;
        }

        return applied;
    }
}

/// <summary>PM2.5, PM10, NO2, O3 with a traffic-shaped day and noise.</summary>
internal sealed class AirQualityStation(string thing, Random random, int intervalMs) : SimulatedDevice(thing, random, intervalMs)
{
    public override string Kind => "airQuality";

    public override JsonObject Sample(DateTimeOffset now)
    {
        var hour = HourOf(now);
        var traffic = Math.Exp(-Math.Pow(hour - 8, 2) / 3) + Math.Exp(-Math.Pow(hour - 18, 2) / 4);
        var sun = Math.Max(0, Math.Sin((hour - 6) / 12 * Math.PI));
        return new JsonObject
        {
            ["pm25"] = Round(Math.Max(1, 8 + (14 * traffic) + Noise(2)), 1),
            ["pm10"] = Round(Math.Max(2, 15 + (20 * traffic) + Noise(3)), 1),
            ["no2"] = Round(Math.Max(1, 18 + (30 * traffic) + Noise(4)), 1),
            ["o3"] = Round(Math.Max(1, 30 + (50 * sun) + Noise(5)), 1),
            ["temperature"] = Round(12 + (8 * sun) + Noise(0.3), 1),
            ["humidity"] = Round(Math.Clamp(70 - (25 * sun) + Noise(2), 10, 100), 1),
        };
    }
}

/// <summary>
/// A machine with temperature, vibration (RMS, mm/s) and OEE counters. One machine in twenty
/// develops a bearing fault some minutes in: its vibration climbs and its temperature follows,
/// for anomaly detection to catch.
/// </summary>
internal sealed class Machine(string thing, Random random, int intervalMs, bool faulty) : SimulatedDevice(thing, random, intervalMs)
{
    private readonly DateTimeOffset _faultAt = DateTimeOffset.UtcNow.AddSeconds(30 + random.Next(0, 90));
    private long _good;
    private long _rejected;
    private long _samples;
    private long _runningSamples;

    public override string Kind => "machine";

    public override JsonObject Sample(DateTimeOffset now)
    {
        _samples++;
        var running = Random.NextDouble() > 0.03;
        var wear = faulty && now > _faultAt ? Math.Min(8, (now - _faultAt).TotalSeconds / 20) : 0;
        if (running)
        {
            _runningSamples++;
            var made = Random.Next(8, 12);
            var bad = Random.NextDouble() < 0.04 + (wear * 0.01) ? 1 : 0;
            _good += made - bad;
            _rejected += bad;
        }

        var availability = (double)_runningSamples / _samples;
        var quality = _good + _rejected == 0 ? 1 : (double)_good / (_good + _rejected);
        return new JsonObject
        {
            ["running"] = running,
            ["temperature"] = Round((running ? 68 : 40) + (wear * 2.5) + Noise(0.8), 1),
            ["vibrationRms"] = Round(Math.Max(0.1, (running ? 2.2 : 0.3) + wear + Noise(0.15)), 2),
            ["rpm"] = running ? Round(1480 + Noise(8), 0) : 0,
            ["goodCount"] = _good,
            ["rejectCount"] = _rejected,
            ["oee"] = Round(availability * 0.95 * quality, 3),
        };
    }
}

/// <summary>
/// A wearable: heart rate with episodes of arrhythmia, SpO2 with dips, a battery that drains, and a
/// connection that comes and goes.
/// </summary>
internal sealed class Wearable(string thing, Random random, int intervalMs) : SimulatedDevice(thing, random, intervalMs)
{
    private readonly double _resting = 58 + random.Next(0, 25);
    private double _battery = 60 + random.Next(0, 40);
    private int _episode;
    private long _steps;

    public override string Kind => "wearable";

    public override bool Intermittent => true;

    public override JsonObject Sample(DateTimeOffset now)
    {
        if (_episode == 0 && Random.NextDouble() < 0.01)
        {
            _episode = Random.Next(10, 40);
        }

        var arrhythmia = _episode > 0;
        if (arrhythmia)
        {
            _episode--;
        }

        var heartRate = arrhythmia ? Random.Next(40, 150) : _resting + Noise(3);
        _battery = Math.Max(0, _battery - 0.02 - (Random.NextDouble() * 0.02));
        _steps += Random.Next(0, 15);
        var dip = Random.NextDouble() < 0.02;
        return new JsonObject
        {
            ["heartRate"] = Round(heartRate, 0),
            ["arrhythmia"] = arrhythmia,
            ["spo2"] = Round(dip ? 88 + (Random.NextDouble() * 4) : 96 + Noise(1), 1),
            ["batteryPct"] = Round(_battery, 1),
            ["steps"] = _steps,
        };
    }
}
