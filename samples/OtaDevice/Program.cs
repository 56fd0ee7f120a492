// A device with two firmware slots (A/B) kept in a folder, updated over the air by the device
// SDK's OTA agent. It runs the image of its active slot; an update job (trellis jobs create
// --firmware) brings a signed image, the agent downloads it (a delta image when the server has
// one from the running image), verifies its SHA-256 and signature, and this program writes it to
// the other slot and "restarts": it switches slots and reconnects, as a bootloader would. After
// the restart the agent reports SUCCEEDED when the self-test passes, or rolls back and reports
// FAILED (start with --fail-self-test to see that).
//
// usage: dotnet run --project samples/OtaDevice -- HOST PORT THING CERT.pem KEY.pem CA.pem SIGNER.pem FOLDER [--fail-self-test] [--seconds N]
//   SIGNER.pem: trellis firmware signer > signer.pem
using System.Security.Cryptography.X509Certificates;
using Trellis.Device;
using Trellis.Device.Ota;

if (args.Length < 8)
{
    Console.Error.WriteLine("usage: OtaDevice HOST PORT THING CERT.pem KEY.pem CA.pem SIGNER.pem FOLDER [--fail-self-test] [--seconds N]");
    return 2;
}

var options = DeviceOptions.FromPemFiles(args[0], int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture), args[2], args[3], args[4], args[5]);
using var signer = X509Certificate2.CreateFromPem(File.ReadAllText(args[6]));
var folder = Directory.CreateDirectory(args[7]).FullName;
var failSelfTest = args.Contains("--fail-self-test");
var slots = new Slots(folder);
using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    stop.Cancel();
};
if (Array.IndexOf(args, "--seconds") is var at and > 0 && at + 1 < args.Length)
{
    stop.CancelAfter(TimeSpan.FromSeconds(int.Parse(args[at + 1], System.Globalization.CultureInfo.InvariantCulture))); // else: until Ctrl-C
}

while (!stop.IsCancellationRequested)
{
    var restart = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously); // true: boot the other slot
    await using var device = await TrellisDevice.ConnectAsync(options, stop.Token);
    Console.WriteLine($"{device.ThingName} runs {slots.Version} from slot {slots.Active}");
    using var agent = new OtaAgent(device, new OtaOptions
    {
        StateDirectory = Path.Combine(folder, "ota"),
        SignerCertificate = signer,
        CurrentVersion = slots.Version,
        CurrentImagePath = slots.ImagePath(slots.Active),
        InstallAsync = (update, _) =>
        {
            slots.Install(update.ImagePath, update.Version ?? update.Sha256[..12]);
            Console.WriteLine($"installed {update.Version} in slot {slots.Other}{(update.FromDelta ? " (from a delta image)" : string.Empty)}; restarting");
            restart.TrySetResult(true);
            return Task.CompletedTask;
        },
        SelfTestAsync = _ => Task.FromResult(!failSelfTest),
        RollbackAsync = (previous, _) =>
        {
            slots.SwitchBack();
            Console.WriteLine($"self-test failed: back to {previous} in slot {slots.Active}; restarting");
            restart.TrySetResult(false);
            return Task.CompletedTask;
        },
    });
    agent.Log += Console.WriteLine;
    await agent.StartAsync(stop.Token);
    try
    {
        if (await restart.Task.WaitAsync(stop.Token))
        {
            slots.Boot(); // what the bootloader does on the restart: run the slot the update was written to
        }
    }
    catch (OperationCanceledException)
    {
        break;
    }
}

return 0;

/// <summary>Two slots, the active one and the version it holds, in files a bootloader would keep.</summary>
internal sealed class Slots(string folder)
{
    private string Read(string name, string fallback) => File.Exists(Path.Combine(folder, name)) ? File.ReadAllText(Path.Combine(folder, name)).Trim() : fallback;

    private void Write(string name, string value) => File.WriteAllText(Path.Combine(folder, name), value);

    public string Active => Read("active", "a");

    public string Other => Active == "a" ? "b" : "a";

    public string Version => Read($"version-{Active}", "1.0.0");

    public string ImagePath(string slot) => Path.Combine(folder, $"slot-{slot}.bin");

    /// <summary>Writes the image to the slot not running, to boot from on the restart.</summary>
    public void Install(string image, string version)
    {
        File.Copy(image, ImagePath(Other), overwrite: true);
        Write($"version-{Other}", version);
        Write("next", Other);
    }

    public void Boot()
    {
        Write("previous", Active);
        Write("active", Read("next", Active));
    }

    public void SwitchBack() => Write("active", Read("previous", Active));
}
