// A lamp that keeps its shadow in sync: it reports its state at start, and whenever an
// application sets a desired "color" or "on", it applies the change and reports it back.
//
// usage: dotnet run --project samples/ShadowDevice -- HOST PORT THING CERT.pem KEY.pem CA.pem [SECONDS]
using System.Text.Json.Nodes;
using Trellis.Device;

if (args.Length is not (6 or 7))
{
    Console.Error.WriteLine("usage: ShadowDevice HOST PORT THING CERT.pem KEY.pem CA.pem [SECONDS]");
    return 2;
}

var options = DeviceOptions.FromPemFiles(args[0], int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture), args[2], args[3], args[4], args[5]);
await using var device = await TrellisDevice.ConnectAsync(options);
Console.WriteLine($"connected as {device.ThingName}");

var lamp = new JsonObject { ["color"] = "white", ["on"] = false };
var shadow = device.Shadow();
shadow.OnDelta(delta =>
{
    // Apply only what the lamp understands; report exactly that.
    var applied = new JsonObject();
    foreach (var (key, value) in delta)
    {
        if (key is "color" or "on")
        {
            lamp[key] = value?.DeepClone();
            applied[key] = value?.DeepClone();
        }
    }

    Console.WriteLine($"applied {applied.ToJsonString()}");
    return applied;
});
shadow.DeltaFailed += e => Console.Error.WriteLine($"could not apply a delta: {e.Message}");

await shadow.ReportAsync(lamp);
await shadow.StartAsync(); // also applies a delta that built up while the lamp was off

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    stop.Cancel();
};
if (args.Length == 7)
{
    stop.CancelAfter(TimeSpan.FromSeconds(int.Parse(args[6], System.Globalization.CultureInfo.InvariantCulture)));
}

Console.WriteLine("waiting for desired changes (Ctrl-C to stop)");
try
{
    await Task.Delay(Timeout.Infinite, stop.Token);
}
catch (OperationCanceledException)
{
}

return 0;
