using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Coap;

/// <summary>
/// CoAP over DTLS 1.2: libcoap's OpenSSL client in PSK and certificate mode, OpenSSL's s_client
/// for session resumption, and hand-made datagrams for a ClientHello flood and garbage records.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class CoapDtlsTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private string Coaps(string path) => $"coaps://127.0.0.1:{host.Server.Port("coaps")}/{path}";

    private Trellis.Coap.CoapEndpoint Endpoint => host.Server.Services.GetRequiredService<Trellis.Server.CoapWorker>().Secure!;

    [Fact]
    public async Task A_device_with_its_pre_shared_key_publishes_observes_and_resumes_its_session_and_a_wrong_or_revoked_key_gets_nothing()
    {
        var (thing, _, token, tokenId, _) = await CoapDevice.CreateAsync(host, "dtlspsk", CoapTests.DevicePolicy, psk: true, Ct);
        var plain = (await host.SignedRequestAsync("POST", $"/api/things/{thing}/tokens", "{}", Ct))["body"]!["token"]!.GetValue<string>();

        // Published at QoS 1 over CoAPS, received over MQTT.
        var watcher = TrellisHost.Unique("dtlsw");
        using var sub = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(watcher), "-t", $"devices/{thing}/#", "-q", "1", "-v"]);
        await host.WaitSubscribedAsync(watcher, sub);
        var published = await CoapsAsync(["-u", thing, "-k", token, "-m", "post", "-e", "21.5", Coaps($"topics/devices/{thing}/temp?qos=1")]);
        Assert.True(published.ExitCode == 0 && !published.Output.Contains("DTLS", StringComparison.Ordinal), published.Output);
        Assert.True(await sub.WaitForLineAsync(l => l == $"devices/{thing}/temp 21.5", Timeout, Ct), "not received over MQTT: " + string.Join('|', sub.Lines));

        // The session is the identity: its policy still holds, and it cannot speak for another thing.
        Assert.Contains("4.03", (await CoapsAsync(["-u", thing, "-k", token, "-m", "post", "-e", "x", Coaps("topics/devices/someone-else/temp")])).Output, StringComparison.Ordinal);
        Assert.Contains("4.03", (await CoapsAsync(["-u", thing, "-k", token, Coaps($"things/{thing}/shadow?thing=someone-else")])).Output, StringComparison.Ordinal);

        // Observed over CoAPS: an MQTT message on its filter arrives as a notification.
        var observed = Path.Combine(Path.GetTempPath(), $"{thing}-observed.out");
        var observations = host.Server.Services.GetRequiredService<Trellis.Server.CoapObservations>();
        var held = observations.Count;
        using (var observer = ExternalTool.StartBackground("coap-client-openssl", ["-u", thing, "-k", token, "-s", "15", "-B", "15", "-o", observed, Coaps($"topics/devices/{thing}/%2B")]))
        {
            Assert.True(await Eventually.TrueAsync(() => observations.Count > held, Timeout, Ct), "the observation was not registered: " + observer.Stderr);
            var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("dtlsop")), "-t", $"devices/{thing}/note", "-m", "over-dtls", "-q", "1"], Timeout, cancellationToken: Ct);
            Assert.True(pub.ExitCode == 0, pub.Output);
            Assert.True(await Eventually.TrueAsync(() => File.Exists(observed) && File.ReadAllText(observed).Contains("over-dtls", StringComparison.Ordinal), Timeout, Ct),
                "no notification over DTLS: " + observer.Stderr);
        }

        File.Delete(observed);

        // Session resumption (an abbreviated handshake): OpenSSL's s_client saves the session, then resumes it.
        var session = Path.Combine(Path.GetTempPath(), $"{thing}.session");
        var key = Convert.ToHexStringLower(System.Text.Encoding.UTF8.GetBytes(token));
        var resumedBefore = Endpoint.DtlsCounters!.Value.Resumptions;
        var first = await ExternalTool.RunWithoutInputAsync("openssl", ["s_client", "-dtls1_2", "-connect", $"127.0.0.1:{host.Server.Port("coaps")}", "-psk_identity", thing, "-psk", key, "-sess_out", session], Timeout, Ct);
        Assert.Contains("New, TLSv1.2", first.Output, StringComparison.Ordinal);
        var again = await ExternalTool.RunWithoutInputAsync("openssl", ["s_client", "-dtls1_2", "-connect", $"127.0.0.1:{host.Server.Port("coaps")}", "-psk_identity", thing, "-psk", key, "-sess_in", session], Timeout, Ct);
        Assert.Contains("Reused, TLSv1.2", again.Output, StringComparison.Ordinal);
        Assert.True(Endpoint.DtlsCounters!.Value.Resumptions > resumedBefore);
        File.Delete(session);

        // A wrong key, a token that is not a PSK, an unknown identity: no session, nothing published.
        var failedBefore = Endpoint.DtlsCounters!.Value.Failed;
        var wrong = await CoapsAsync(["-B", "3", "-u", thing, "-k", token + "x", "-m", "post", "-e", "wrong-key", Coaps($"topics/devices/{thing}/temp")]);
        var notPsk = await CoapsAsync(["-B", "3", "-u", thing, "-k", plain, "-m", "post", "-e", "not-psk", Coaps($"topics/devices/{thing}/temp")]);
        var unknown = await CoapsAsync(["-B", "3", "-u", "nobody-" + thing, "-k", token, "-m", "post", "-e", "unknown", Coaps($"topics/devices/{thing}/temp")]);
        Assert.Contains("unknown psk identity", unknown.Output, StringComparison.OrdinalIgnoreCase);

        // Revoked: the next full handshake is refused, and a session still open is refused per request.
        var revoked = await host.SignedRequestAsync("DELETE", $"/api/tokens/{tokenId}", null, Ct);
        Assert.Equal(200, revoked["status"]!.GetValue<int>());
        var afterRevoke = await CoapsAsync(["-B", "3", "-u", thing, "-k", token, "-m", "post", "-e", "revoked", Coaps($"topics/devices/{thing}/temp")]);
        Assert.Contains("unknown psk identity", afterRevoke.Output, StringComparison.OrdinalIgnoreCase);
        Assert.True(await Eventually.TrueAsync(() => Endpoint.DtlsCounters!.Value.Failed >= failedBefore + 2, Timeout, Ct), "refused handshakes were not counted");
        await Task.Delay(500, Ct);
        Assert.DoesNotContain(sub.Lines, l => l.Contains("wrong-key", StringComparison.Ordinal) || l.Contains("not-psk", StringComparison.Ordinal)
            || l.Contains("unknown", StringComparison.Ordinal) || l.Contains("revoked", StringComparison.Ordinal));
        Assert.Contains("cannot send", wrong.Output + notPsk.Output, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_device_with_its_certificate_keeps_its_shadow_over_coaps_and_an_unknown_or_deactivated_certificate_is_refused()
    {
        var thing = TrellisHost.Unique("dtlscert");
        var policy = TrellisHost.Unique("dtlscpol");
        var made = await host.IotCallsAsync([("create_thing", new { thingName = thing }), ("create_keys_and_certificate", new { setAsActive = true }), ("create_policy", new { policyName = policy, policyDocument = CoapTests.DevicePolicy })], Ct);
        var keys = made[1]!["body"]!;
        var arn = keys["certificateArn"]!.GetValue<string>();
        var linked = await host.IotCallsAsync([("attach_policy", new { policyName = policy, target = arn }), ("attach_thing_principal", new { thingName = thing, principal = arn })], Ct);
        Assert.All(linked, r => Assert.Equal(200, r!["status"]!.GetValue<int>()));
        var directory = Directory.CreateTempSubdirectory("dtlscert").FullName;
        var certFile = Path.Combine(directory, "device.pem");
        var keyFile = Path.Combine(directory, "device.key");
        await File.WriteAllTextAsync(certFile, keys["certificatePem"]!.GetValue<string>(), Ct);
        await File.WriteAllTextAsync(keyFile, keys["keyPair"]!["PrivateKey"]!.GetValue<string>(), Ct);
        string[] Pki(string cert, string key) => ["-c", cert, "-j", key, "-C", host.CaPath];

        // The client checks the server's certificate against Trellis's CA (-C); the server checks the device's.
        var updated = await CoapsAsync([.. Pki(certFile, keyFile), "-m", "post", "-e", """{"state":{"reported":{"lamp":"on"}}}""", Coaps($"things/{thing}/shadow")]);
        Assert.True(updated.ExitCode == 0 && updated.Output.Contains("\"version\":1", StringComparison.Ordinal), updated.Output);
        var viaAws = await host.IotCallsAsync([("data:get_thing_shadow", new { thingName = thing })], Ct);
        Assert.Equal("on", viaAws[0]!["body"]!["payload"]!["state"]!["reported"]!["lamp"]!.GetValue<string>());
        Assert.Contains("4.03", (await CoapsAsync([.. Pki(certFile, keyFile), Coaps("things/someone-else/shadow")])).Output, StringComparison.Ordinal);

        // A self-signed certificate the registry does not know is refused in the handshake, with a log line saying why.
        using (var rogueKey = ECDsa.Create(ECCurve.NamedCurves.nistP256))
        {
            var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=rogue", rogueKey, HashAlgorithmName.SHA256);
            using var rogue = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
            await File.WriteAllTextAsync(Path.Combine(directory, "rogue.pem"), rogue.ExportCertificatePem(), Ct);
            await File.WriteAllTextAsync(Path.Combine(directory, "rogue.key"), rogueKey.ExportPkcs8PrivateKeyPem(), Ct);
        }

        var rogueAnswer = await CoapsAsync(["-B", "3", .. Pki(Path.Combine(directory, "rogue.pem"), Path.Combine(directory, "rogue.key")), Coaps($"things/{thing}/shadow")]);
        Assert.Contains("bad certificate", rogueAnswer.Output, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("lamp", rogueAnswer.Output, StringComparison.Ordinal);

        // Deactivated: the certificate still chains to the CA, but the registry refuses each request (4.01, no payload).
        var inactive = await host.IotCallsAsync([("update_certificate", new { certificateId = keys["certificateId"]!.GetValue<string>(), newStatus = "INACTIVE" })], Ct);
        Assert.Equal(200, inactive[0]!["status"]!.GetValue<int>());
        var refused = await CoapsAsync([.. Pki(certFile, keyFile), Coaps($"things/{thing}/shadow")]);
        Assert.Contains("4.01", refused.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("lamp", refused.Output, StringComparison.Ordinal);
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public async Task A_flood_of_ClientHellos_with_forged_cookies_and_garbage_records_keeps_no_state_amplifies_nothing_and_stops_no_one()
    {
        var counters = Endpoint.DtlsCounters!.Value;
        using var udp = new UdpClient(AddressFamily.InterNetwork);
        udp.Connect(IPAddress.Loopback, host.Server.Port("coaps"));
        var answers = new List<int>();
        var receiving = Task.Run(async () =>
        {
            using var quiet = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            try
            {
                while (true)
                {
                    quiet.CancelAfter(TimeSpan.FromSeconds(2));
                    answers.Add((await udp.ReceiveAsync(quiet.Token)).Buffer.Length);
                }
            }
            catch (OperationCanceledException)
            {
            }
        }, Ct);

        // 2 000 ClientHellos, each with a cookie the server never issued, and 2 000 datagrams of garbage
        // in DTLS dress: application data for a session that does not exist, truncated headers, noise.
        var hello = ClientHello(RandomNumberGenerator.GetBytes(32));
        for (var i = 0; i < 2_000; i++)
        {
            await udp.SendAsync(ClientHello(RandomNumberGenerator.GetBytes(32)), Ct);
            await udp.SendAsync((i % 3) switch
            {
                0 => [23, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, (byte)i, 0, 16, .. RandomNumberGenerator.GetBytes(16)],
                1 => [22, 0xFE, 0xFD, 0, 0],
                _ => RandomNumberGenerator.GetBytes(1 + (i % 200)),
            }, Ct);
            if (i % 200 == 0)
            {
                await Task.Delay(5, Ct);
            }
        }

        await receiving;

        // Each forged cookie got a HelloVerifyRequest, smaller than the ClientHello (RFC 6347 §4.2.1),
        // and nothing else was answered or kept.
        Assert.True(answers.Count > 1_000, $"{answers.Count} HelloVerifyRequests for 2 000 ClientHellos");
        Assert.All(answers, length => Assert.True(length < hello.Length, $"an answer of {length} bytes to a {hello.Length}-byte ClientHello"));
        var after = Endpoint.DtlsCounters!.Value;
        Assert.Equal(counters.Handshakes, after.Handshakes);
        Assert.Equal(counters.Failed, after.Failed);
        Assert.True(after.Dropped >= counters.Dropped + 1_000, $"dropped {after.Dropped - counters.Dropped} of 2 000 (UDP may lose some before they arrive)");

        // The endpoint still serves a real device.
        var device = await CoapDevice.CreateAsync(host, "dtlsok", CoapTests.DevicePolicy, psk: true, Ct);
        var read = await CoapsAsync(["-u", device.Thing, "-k", device.Token, "-m", "post", "-e", """{"state":{"reported":{"ok":true}}}""", Coaps($"things/{device.Thing}/shadow")]);
        Assert.True(JsonNode.Parse(read.Stdout.Trim())!["state"]!["reported"]!["ok"]!.GetValue<bool>(), read.Output);
    }

    private static Task<ExternalTool.Result> CoapsAsync(string[] args) =>
        ExternalTool.RunAsync("coap-client-openssl", ["-B", "5", .. args], Timeout, cancellationToken: Ct);

    /// <summary>A DTLS 1.2 ClientHello record (RFC 6347 §4.2.2) offering one PSK suite, with the given cookie.</summary>
    private static byte[] ClientHello(byte[] cookie)
    {
        byte[] body = [0xFE, 0xFD, .. RandomNumberGenerator.GetBytes(32), 0, (byte)cookie.Length, .. cookie, 0, 2, 0x00, 0xA8, 1, 0];
        byte[] handshake = [1, 0, 0, (byte)body.Length, 0, 0, 0, 0, 0, 0, 0, (byte)body.Length, .. body];
        return [22, 0xFE, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0, (byte)handshake.Length, .. handshake];
    }
}
