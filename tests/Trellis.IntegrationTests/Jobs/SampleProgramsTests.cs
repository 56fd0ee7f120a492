using System.Globalization;
using System.Security.Cryptography;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Jobs;

/// <summary>
/// The .NET sample programs the docs run with <c>dotnet run</c> (samples/ShadowDevice,
/// samples/OtaDevice), as the solution build makes them, against a real server: the lamp follows a
/// desired state set with boto3, and the two-slot device installs a signed image through an update
/// job made with <c>trellis jobs create --firmware</c>.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class SampleProgramsTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string Sample(string name)
    {
        var dll = Path.Combine(TrellisCli.RepositoryRoot(), "artifacts", "bin", name, "release", name + ".dll");
        Assert.True(File.Exists(dll), $"{dll} is missing: build Trellis.slnx -c Release first");
        return dll;
    }

    private async Task<(string Thing, string Folder)> ProvisionAsync(string prefix)
    {
        var thing = TrellisHost.Unique(prefix);
        var folder = Path.Combine(host.DataDirectory, thing);
        var made = await TrellisCli.RunAsync(host, ["provision", "--thing", thing, "--out", folder], Ct);
        Assert.True(made.ExitCode == 0, made.Output);
        return (thing, folder);
    }

    private string Port => host.MqttsPort.ToString(CultureInfo.InvariantCulture);

    [Fact]
    public async Task The_shadow_device_applies_and_reports_what_is_desired()
    {
        var (thing, folder) = await ProvisionAsync("sdlamp");
        using var device = ExternalTool.StartBackground("dotnet",
            [Sample("ShadowDevice"), "localhost", Port, thing, Path.Combine(folder, thing + ".cert.pem"), Path.Combine(folder, thing + ".private.key"), host.CaPath, "60"]);
        Assert.True(await device.WaitForLineAsync(l => l.StartsWith("waiting for desired changes", StringComparison.Ordinal), Timeout, Ct), string.Join('\n', device.Lines) + device.Stderr);

        var desired = await host.IotCallsAsync([("data:update_thing_shadow", new { thingName = thing, payload = new { state = new { desired = new { color = "green" } } } })], Ct);
        Assert.Equal(200, desired[0]!["status"]!.GetValue<int>());
        Assert.True(await device.WaitForLineAsync(l => l == """applied {"color":"green"}""", Timeout, Ct), string.Join('\n', device.Lines) + device.Stderr);
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            var shadow = await host.IotCallsAsync([("data:get_thing_shadow", new { thingName = thing })], Ct);
            return shadow[0]!["body"]?["payload"]?["state"]?["reported"]?["color"]?.GetValue<string>() == "green";
        }, Timeout, Ct), "the reported colour did not follow");
    }

    [Fact]
    public async Task The_ota_device_installs_a_signed_image_from_an_update_job_and_reports_success()
    {
        var (thing, folder) = await ProvisionAsync("otalamp");
        var image = Path.Combine(host.DataDirectory, thing + ".bin");
        await File.WriteAllBytesAsync(image, RandomNumberGenerator.GetBytes(200_000), Ct);
        var name = thing + "-2.0.0.bin";
        var uploaded = await TrellisCli.RunAsync(host, ["firmware", "upload", name, image, "--sign"], Ct);
        Assert.True(uploaded.ExitCode == 0, uploaded.Output);
        var signer = Path.Combine(host.DataDirectory, thing + "-signer.pem");
        await File.WriteAllTextAsync(signer, (await TrellisCli.RunAsync(host, ["firmware", "signer"], Ct)).Stdout, Ct);
        var job = TrellisHost.Unique("otajob");
        var created = await TrellisCli.RunAsync(host, ["jobs", "create", job, "--thing", thing, "--firmware", name, "--version", "2.0.0"], Ct);
        Assert.True(created.ExitCode == 0, created.Output);

        var slots = Path.Combine(host.DataDirectory, thing + "-slots");
        using var device = ExternalTool.StartBackground("dotnet",
            [Sample("OtaDevice"), "localhost", Port, thing, Path.Combine(folder, thing + ".cert.pem"), Path.Combine(folder, thing + ".private.key"), host.CaPath, signer, slots, "--seconds", "60"]);
        Assert.True(await device.WaitForLineAsync(l => l == $"{thing} runs 2.0.0 from slot b", Timeout, Ct), string.Join('\n', device.Lines) + device.Stderr);
        Assert.Equal(await File.ReadAllBytesAsync(image, Ct), await File.ReadAllBytesAsync(Path.Combine(slots, "slot-b.bin"), Ct));
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            var executions = await TrellisCli.RunAsync(host, ["jobs", "executions", job, "--output", "json"], Ct);
            return executions.ExitCode == 0 && executions.Stdout.Contains("SUCCEEDED", StringComparison.Ordinal);
        }, Timeout, Ct), "the execution did not end SUCCEEDED");
    }
}
