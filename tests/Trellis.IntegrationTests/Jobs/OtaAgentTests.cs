using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Trellis.Device;
using Trellis.Device.Ota;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Jobs;

/// <summary>
/// Signed firmware end to end: images signed by Trellis (checked with openssl) or elsewhere, a
/// delta image (checked with Debian's zstd --patch-from), and the device SDK's OTA agent against
/// the real server: delta download, install, SUCCEEDED only after the restart; a tampered or
/// wrongly signed image FAILED with nothing installed; a failed self-test rolled back.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class OtaAgentTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_signed_update_arrives_as_a_delta_and_succeeds_only_once_the_new_version_runs_after_the_restart()
    {
        var dir = Directory.CreateDirectory(Path.Combine(host.DataDirectory, TrellisHost.Unique("ota"))).FullName;
        var (v1, v2) = ImagePair(1 << 20);
        var v1Path = Path.Combine(dir, "v1.bin");
        var v2Path = Path.Combine(dir, "v2.bin");
        await File.WriteAllBytesAsync(v1Path, v1, Ct);
        await File.WriteAllBytesAsync(v2Path, v2, Ct);
        var v1Name = TrellisHost.Unique("lamp-1.0.0") + ".bin";
        var v2Name = TrellisHost.Unique("lamp-2.0.0") + ".bin";
        await CliAsync("firmware", "upload", v1Name, v1Path, "--sign");
        var uploaded = JsonNode.Parse(await CliAsync("firmware", "upload", v2Name, v2Path, "--sign", "--output", "json"))!;
        Assert.Equal("SHA256withECDSA", uploaded["signatureAlgorithm"]!.GetValue<string>());

        // openssl checks Trellis's signature with the public key of the signer certificate devices are given.
        var signerPath = Path.Combine(dir, "signer.pem");
        await File.WriteAllTextAsync(signerPath, await CliAsync("firmware", "signer"), Ct);
        var publicKey = Path.Combine(dir, "signer.pub");
        await ExternalTool.RunCheckedAsync("sh", ["-c", $"openssl x509 -in '{signerPath}' -pubkey -noout > '{publicKey}'"], Timeout, cancellationToken: Ct);
        var signatureFile = Path.Combine(dir, "v2.sig");
        await File.WriteAllBytesAsync(signatureFile, Convert.FromBase64String(uploaded["signature"]!.GetValue<string>()), Ct);
        var verified = await ExternalTool.RunAsync("openssl", ["dgst", "-sha256", "-verify", publicKey, "-signature", signatureFile, v2Path], Timeout, cancellationToken: Ct);
        Assert.True(verified.ExitCode == 0, verified.Stdout + verified.Stderr);
        Assert.NotEqual(0, (await ExternalTool.RunAsync("openssl", ["dgst", "-sha256", "-verify", publicKey, "-signature", signatureFile, v1Path], Timeout, cancellationToken: Ct)).ExitCode);

        // The delta image is a fraction of the full one, and Debian's zstd rebuilds v2 from v1 with it.
        var delta = JsonNode.Parse(await CliAsync("firmware", "delta", v2Name, "--from", v1Name, "--output", "json"))!;
        Assert.True(delta["saving"]!.GetValue<double>() > 0.9, delta.ToJsonString());
        var url = (await CliAsync("firmware", "url", v2Name)).Trim();
        var patch = Path.Combine(dir, "v1-v2.zst");
        var code = await ExternalTool.RunAsync("curl", ["-s", "-o", patch, "-w", "%{http_code}", url + "&from=" + Convert.ToHexStringLower(SHA256.HashData(v1))], Timeout, cancellationToken: Ct);
        Assert.Equal("200", code.Stdout.Trim());
        Assert.Equal(delta["size"]!.GetValue<long>(), new FileInfo(patch).Length);
        var rebuilt = Path.Combine(dir, "rebuilt.bin");
        await ExternalTool.RunCheckedAsync("zstd", ["-q", "-d", "-f", $"--patch-from={v1Path}", patch, "-o", rebuilt], Timeout, cancellationToken: Ct);
        Assert.Equal(v2, await File.ReadAllBytesAsync(rebuilt, Ct));

        // The device runs v1; the job brings v2.
        var thing = TrellisHost.Unique("lamp");
        var device = await host.ProvisionAsync(thing, TrellisHost.Unique("jobs"), Policies.OwnJobs, Ct);
        var options = DeviceOptions.FromPemFiles("localhost", host.MqttsPort, thing, device.CertPath, device.KeyPath, host.CaPath);
        using var signer = X509Certificate2.CreateFromPem(await File.ReadAllTextAsync(signerPath, Ct));
        var state = Path.Combine(dir, "agent");
        var slot = Path.Combine(dir, "slot-b.bin");
        var installed = new TaskCompletionSource<OtaUpdate>(TaskCreationOptions.RunContinuationsAsynchronously);
        var job = TrellisHost.Unique("ota");
        await using (var before = await TrellisDevice.ConnectAsync(options, Ct))
        {
            using var agent = new OtaAgent(before, new OtaOptions
            {
                StateDirectory = state,
                SignerCertificate = signer,
                CurrentVersion = "1.0.0",
                CurrentImagePath = v1Path,
                InstallAsync = (update, _) =>
                {
                    File.Copy(update.ImagePath, slot, overwrite: true);
                    installed.TrySetResult(update);
                    return Task.CompletedTask;
                },
            });
            await agent.StartAsync(Ct);
            await CliAsync("jobs", "create", job, "--thing", thing, "--firmware", v2Name, "--version", "2.0.0");
            var update = await installed.Task.WaitAsync(Timeout, Ct);
            Assert.True(update.FromDelta);
            Assert.Equal(v2, await File.ReadAllBytesAsync(slot, Ct));
            Assert.True(await Eventually.TrueAsync(async () => (await ExecutionAsync(job, thing))["statusDetails"]?["detailsMap"]?["step"]?.GetValue<string>() == "awaiting-restart", Timeout, Ct));
            Assert.Equal("IN_PROGRESS", (await ExecutionAsync(job, thing))["status"]!.GetValue<string>());
        }

        // After the restart the device runs 2.0.0 and its self-test passes: SUCCEEDED.
        await using (var after = await TrellisDevice.ConnectAsync(options, Ct))
        {
            var finished = new TaskCompletionSource<(string, string, string?)>(TaskCreationOptions.RunContinuationsAsynchronously);
            using var agent = new OtaAgent(after, new OtaOptions
            {
                StateDirectory = state,
                SignerCertificate = signer,
                CurrentVersion = "2.0.0",
                InstallAsync = (_, _) => throw new InvalidOperationException("nothing more to install"),
                SelfTestAsync = _ => Task.FromResult(true),
            });
            agent.Finished += (id, status, reason) => finished.TrySetResult((id, status, reason));
            await agent.StartAsync(Ct);
            Assert.Equal((job, "SUCCEEDED", (string?)null), await finished.Task.WaitAsync(Timeout, Ct));
        }

        var execution = await ExecutionAsync(job, thing);
        Assert.Equal("SUCCEEDED", execution["status"]!.GetValue<string>());
        Assert.Equal("2.0.0", execution["statusDetails"]!["detailsMap"]!["version"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_tampered_download_a_foreign_signature_and_a_failed_self_test_each_end_FAILED_with_nothing_kept()
    {
        var dir = Directory.CreateDirectory(Path.Combine(host.DataDirectory, TrellisHost.Unique("ota"))).FullName;
        var image = RandomNumberGenerator.GetBytes(300_000);
        var imagePath = Path.Combine(dir, "fw.bin");
        await File.WriteAllBytesAsync(imagePath, image, Ct);
        var ours = TrellisHost.Unique("ours") + ".bin";
        var theirs = TrellisHost.Unique("theirs") + ".bin";
        await CliAsync("firmware", "upload", ours, imagePath, "--sign");
        await CliAsync("firmware", "upload", theirs, imagePath);

        // A signature made elsewhere (openssl, its own key) is recorded once it verifies; a wrong one is refused.
        var key = Path.Combine(dir, "release.key");
        var cert = Path.Combine(dir, "release.pem");
        await ExternalTool.RunCheckedAsync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-subj", "/CN=release signer", "-days", "30"], Timeout, cancellationToken: Ct);
        var signature = Path.Combine(dir, "fw.sig");
        await ExternalTool.RunCheckedAsync("openssl", ["dgst", "-sha256", "-sign", key, "-out", signature, imagePath], Timeout, cancellationToken: Ct);
        var wrong = Path.Combine(dir, "wrong.sig");
        await ExternalTool.RunCheckedAsync("sh", ["-c", $"head -c 100 /dev/urandom | openssl dgst -sha256 -sign '{key}' -out '{wrong}'"], Timeout, cancellationToken: Ct);
        var refused = await TrellisCli.RunAsync(host, ["firmware", "sign", theirs, "--signature", wrong, "--certificate", cert], Ct);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("does not verify", refused.Output, StringComparison.Ordinal);
        await CliAsync("firmware", "sign", theirs, "--signature", signature, "--certificate", cert);

        var thing = TrellisHost.Unique("pump");
        var device = await host.ProvisionAsync(thing, TrellisHost.Unique("jobs"), Policies.OwnJobs, Ct);
        var options = DeviceOptions.FromPemFiles("localhost", host.MqttsPort, thing, device.CertPath, device.KeyPath, host.CaPath);
        using var signer = X509Certificate2.CreateFromPem(await CliAsync("firmware", "signer"));
        var state = Path.Combine(dir, "agent");
        var installs = 0;
        var rolledBack = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var results = new System.Collections.Concurrent.ConcurrentQueue<(string Job, string Status, string? Reason)>();
        var jobs = new[] { TrellisHost.Unique("tampered"), TrellisHost.Unique("foreign"), TrellisHost.Unique("selftest") };

        // 1: a cut download whose first half on disk was altered: the agent resumes from where the
        //    file ends, the whole fails its SHA-256 and is not installed. 2: signed by a key the device does not trust.
        Directory.CreateDirectory(state);
        var half = image[..150_000];
        half[10] ^= 0xFF;
        await File.WriteAllBytesAsync(Path.Combine(state, jobs[0] + ".img.part"), half, Ct);
        await CliAsync("jobs", "create", jobs[0], "--thing", thing, "--firmware", ours, "--version", "3.0.0");
        await CliAsync("jobs", "create", jobs[1], "--thing", thing, "--firmware", theirs, "--version", "3.0.0");
        await CliAsync("jobs", "create", jobs[2], "--thing", thing, "--firmware", ours, "--version", "3.0.0");
        await using (var before = await TrellisDevice.ConnectAsync(options, Ct))
        {
            var installed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using var agent = new OtaAgent(before, new OtaOptions
            {
                StateDirectory = state,
                SignerCertificate = signer,
                CurrentVersion = "2.0.0",
                InstallAsync = (_, _) =>
                {
                    Interlocked.Increment(ref installs);
                    installed.TrySetResult();
                    return Task.CompletedTask;
                },
            });
            agent.Finished += (id, status, reason) => results.Enqueue((id, status, reason));
            await agent.StartAsync(Ct);
            await installed.Task.WaitAsync(Timeout, Ct);
        }

        Assert.Equal(1, installs); // only the third job's image got as far as the application
        var ended = results.ToArray();
        Assert.Equal([(jobs[0], "FAILED"), (jobs[1], "FAILED")], ended.Select(e => (e.Job, e.Status)));
        Assert.Contains("SHA-256", ended[0].Reason, StringComparison.Ordinal);
        Assert.Contains("signature does not verify", ended[1].Reason, StringComparison.Ordinal);
        Assert.Contains("SHA-256", (await ExecutionAsync(jobs[0], thing))["statusDetails"]!["detailsMap"]!["reason"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(state, jobs[0] + ".img.part")));

        // 3: installed, but after the restart the self-test fails: rolled back to 2.0.0, FAILED.
        await using (var after = await TrellisDevice.ConnectAsync(options, Ct))
        {
            var finished = new TaskCompletionSource<(string, string, string?)>(TaskCreationOptions.RunContinuationsAsynchronously);
            using var agent = new OtaAgent(after, new OtaOptions
            {
                StateDirectory = state,
                SignerCertificate = signer,
                CurrentVersion = "3.0.0",
                InstallAsync = (_, _) => Task.CompletedTask,
                SelfTestAsync = _ => Task.FromResult(false),
                RollbackAsync = (previous, _) =>
                {
                    rolledBack.TrySetResult(previous);
                    return Task.CompletedTask;
                },
            });
            agent.Finished += (id, status, reason) => finished.TrySetResult((id, status, reason));
            await agent.StartAsync(Ct);
            var (id, status, reason) = await finished.Task.WaitAsync(Timeout, Ct);
            Assert.Equal((jobs[2], "FAILED"), (id, status));
            Assert.Contains("self-test", reason, StringComparison.Ordinal);
            Assert.Equal("2.0.0", await rolledBack.Task.WaitAsync(Timeout, Ct));
        }

        Assert.Equal("FAILED", (await ExecutionAsync(jobs[2], thing))["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_device_without_https_fetches_its_update_in_blocks_from_a_stream_over_mqtt()
    {
        var dir = Directory.CreateDirectory(Path.Combine(host.DataDirectory, TrellisHost.Unique("ota"))).FullName;
        var image = RandomNumberGenerator.GetBytes(150_001);
        var imagePath = Path.Combine(dir, "fw.bin");
        await File.WriteAllBytesAsync(imagePath, image, Ct);
        var name = TrellisHost.Unique("sensor") + ".bin";
        await CliAsync("firmware", "upload", name, imagePath, "--sign");

        var thing = TrellisHost.Unique("sensor");
        var device = await host.ProvisionAsync(thing, TrellisHost.Unique("ota"), Policies.OwnJobsAndStreams, Ct);
        using var signer = X509Certificate2.CreateFromPem(await CliAsync("firmware", "signer"));
        var job = TrellisHost.Unique("ota");
        await CliAsync("jobs", "create", job, "--thing", thing, "--firmware", name, "--version", "5.0.0", "--protocol", "MQTT");
        var stream = (await host.IotCallsAsync([("describe_stream", new { streamId = job })], Ct))[0]!["body"]!["streamInfo"]!;
        Assert.Equal(name, stream["files"]![0]!["s3Location"]!["key"]!.GetValue<string>());

        var installed = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var client = await TrellisDevice.ConnectAsync(DeviceOptions.FromPemFiles("localhost", host.MqttsPort, thing, device.CertPath, device.KeyPath, host.CaPath), Ct);
        using var agent = new OtaAgent(client, new OtaOptions
        {
            StateDirectory = Path.Combine(dir, "agent"),
            SignerCertificate = signer,
            CurrentVersion = "4.0.0",
            InstallAsync = async (update, ct) => installed.TrySetResult(await File.ReadAllBytesAsync(update.ImagePath, ct)),
        });
        await agent.StartAsync(Ct);
        Assert.Equal(image, await installed.Task.WaitAsync(Timeout, Ct));
        var execution = await ExecutionAsync(job, thing);
        Assert.Equal("IN_PROGRESS", execution["status"]!.GetValue<string>());
        Assert.True(await Eventually.TrueAsync(async () => (await ExecutionAsync(job, thing))["statusDetails"]?["detailsMap"]?["step"]?.GetValue<string>() == "awaiting-restart", Timeout, Ct));
    }

    /// <summary>A 'realistic' pair: v2 is v1 with scattered small edits, an insertion and a changed tail, as a rebuild with a fix looks.</summary>
    private static (byte[] V1, byte[] V2) ImagePair(int size)
    {
        var random = new Random(18);
        var v1 = new byte[size];
        for (var i = 0; i < size; i += 4096)
        {
            // Code-like content: repeated short patterns with variation, not pure noise.
            var block = new byte[Math.Min(4096, size - i)];
            random.NextBytes(block.AsSpan(0, Math.Min(256, block.Length)));
            for (var j = 256; j < block.Length; j++)
            {
                block[j] = (byte)(block[j % 256] ^ (j / 256));
            }

            block.CopyTo(v1, i);
        }

        var v2 = new List<byte>(v1);
        for (var k = 0; k < 40; k++)
        {
            var at = random.Next(0, v2.Count - 64);
            for (var j = 0; j < 32; j++)
            {
                v2[at + j] = (byte)random.Next(256);
            }
        }

        var insert = new byte[8192];
        random.NextBytes(insert);
        v2.InsertRange(size / 3, insert);
        return (v1, [.. v2]);
    }

    private async Task<string> CliAsync(params string[] args)
    {
        var result = await TrellisCli.RunAsync(host, args, Ct);
        Assert.True(result.ExitCode == 0, $"trellis {string.Join(' ', args)}: {result.Output}");
        return result.Stdout;
    }

    private async Task<JsonNode> ExecutionAsync(string job, string thing)
    {
        var r = await host.IotCallsAsync([("describe_job_execution", new { jobId = job, thingName = thing })], Ct);
        return r[0]!["body"]!["execution"]!;
    }
}
