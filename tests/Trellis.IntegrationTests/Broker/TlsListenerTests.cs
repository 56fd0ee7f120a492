using System.Diagnostics;
using System.Net.Sockets;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>
/// The MQTT TLS listener on the broker's own loops (OpenSSL over memory buffers): messages larger
/// than a TLS record both ways, session resumption by a real TLS client, and what happens to a
/// client that never completes a handshake or speaks plain MQTT to the TLS port.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class TlsListenerTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Messages_of_many_records_cross_the_TLS_listener_whole_both_ways()
    {
        var ct = TestContext.Current.CancellationToken;
        var device = await host.ProvisionAsync(TrellisHost.Unique("tlsbig"), TrellisHost.Unique("pol"), Policies.PerThing, ct);
        var payload = string.Concat(Enumerable.Range(0, 14_000).Select(i => i.ToString("D7", System.Globalization.CultureInfo.InvariantCulture))); // 98 000 bytes: six records
        var file = Path.Combine(host.DataDirectory, TrellisHost.Unique("payload"));
        await File.WriteAllTextAsync(file, payload, ct);

        // To the device: it reads over TLS what an operator published on the plain port.
        using (var deviceSub = ExternalTool.StartBackground("mosquitto_sub", [.. host.TlsArgs(device), "-t", $"devices/{device.ThingName}/in", "-q", "1", "-C", "1"]))
        {
            await host.WaitSubscribedAsync(device.ThingName, deviceSub);
            var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("op")), "-t", $"devices/{device.ThingName}/in", "-f", file, "-q", "1"], Timeout, cancellationToken: ct);
            Assert.True(pub.ExitCode == 0, pub.Output);
            Assert.True(await deviceSub.WaitForLineAsync(l => l.Length >= payload.Length, Timeout, ct), "the device got no whole message: " + deviceSub.Stderr);
            Assert.Equal(payload, deviceSub.Lines.First(l => l.Length >= payload.Length));
        }

        // From the device: it publishes over TLS, an operator reads it on the plain port.
        var operatorId = TrellisHost.Unique("op");
        using var operatorSub = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(operatorId), "-t", $"devices/{device.ThingName}/out", "-q", "1", "-C", "1"]);
        await host.WaitSubscribedAsync(operatorId, operatorSub);
        var devicePub = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device), "-t", $"devices/{device.ThingName}/out", "-f", file, "-q", "1"], Timeout, cancellationToken: ct);
        Assert.True(devicePub.ExitCode == 0, devicePub.Output);
        Assert.True(await operatorSub.WaitForLineAsync(l => l.Length >= payload.Length, Timeout, ct), "the operator got no whole message: " + operatorSub.Stderr);
        Assert.Equal(payload, operatorSub.Lines.First(l => l.Length >= payload.Length));
    }

    [Fact]
    public async Task A_device_that_reconnects_resumes_its_TLS_session_and_is_still_checked()
    {
        var ct = TestContext.Current.CancellationToken;
        var device = await host.ProvisionAsync(TrellisHost.Unique("tlsres"), TrellisHost.Unique("pol"), Policies.PerThing, ct);

        // Python's ssl module (OpenSSL) as the client: the first connect's session is offered again.
        const string Script = """
            import socket, ssl, sys
            port, ca, cert, key, client = sys.argv[1:6]
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(ca)
            ctx.load_cert_chain(cert, key)
            def connect(session):
                s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port)), timeout=10), server_hostname="localhost", session=session)
                cid = client.encode()
                body = b"\x00\x04MQTT\x04\x02\x00\x1e" + len(cid).to_bytes(2, "big") + cid
                s.sendall(bytes([0x10, len(body)]) + body)
                ack = s.recv(4)
                return s, ack
            def close(s):
                try:
                    s.sendall(b"\xe0\x00")
                except OSError:
                    pass  # a refused connect is closed by the server already
                s.close()
            first, ack1 = connect(None)
            session, reused1 = first.session, first.session_reused
            close(first)
            second, ack2 = connect(session)
            print(reused1, second.session_reused, ack1.hex(), ack2.hex())
            close(second)
            """;
        var port = host.MqttsPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var run = await ExternalTool.RunAsync("python3", ["-c", Script, port, host.CaPath, device.CertPath, device.KeyPath, device.ThingName], Timeout, cancellationToken: ct);
        Assert.True(run.ExitCode == 0, run.Output);
        Assert.Equal("False True 20020000 20020000", run.Stdout.Trim());

        // The resumed session carries the certificate, and the certificate is checked again at
        // CONNECT: once revoked, a resumed session is refused too.
        var revoke = await host.IotCallsAsync([("update_certificate", new { certificateId = device.CertificateId, newStatus = "REVOKED" })], ct);
        Assert.Equal(200, revoke[0]!["status"]!.GetValue<int>());
        var refused = await ExternalTool.RunAsync("python3", ["-c", Script, port, host.CaPath, device.CertPath, device.KeyPath, device.ThingName], Timeout, cancellationToken: ct);
        Assert.True(refused.ExitCode == 0, refused.Output);
        Assert.Equal("False True 20020005 20020005", refused.Stdout.Trim());
    }

    [Fact]
    public async Task A_client_that_never_completes_the_handshake_is_closed_and_plain_MQTT_on_the_TLS_port_is_refused_at_once()
    {
        var ct = TestContext.Current.CancellationToken;

        // Silent: closed when Broker:ConnectTimeoutSeconds (2 s in the test host) passes, not before.
        using (var silent = new TcpClient())
        {
            await silent.ConnectAsync("127.0.0.1", host.MqttsPort, ct);
            var watch = Stopwatch.StartNew();
            Assert.Equal(0, await ReadUntilClosedAsync(silent.GetStream(), new byte[64], ct));
            Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(10));
        }

        // A plain MQTT CONNECT where a ClientHello belongs: the handshake fails on it, the
        // connection ends with an alert at once.
        using (var plain = new TcpClient())
        {
            await plain.ConnectAsync("127.0.0.1", host.MqttsPort, ct);
            var stream = plain.GetStream();
            byte[] connect = [0x10, 0x10, 0x00, 0x04, (byte)'M', (byte)'Q', (byte)'T', (byte)'T', 0x04, 0x02, 0x00, 0x1e, 0x00, 0x04, (byte)'p', (byte)'l', (byte)'a', (byte)'n'];
            await stream.WriteAsync(connect, ct);
            var watch = Stopwatch.StartNew();
            var buffer = new byte[256];
            var total = await ReadUntilClosedAsync(stream, buffer, ct);

            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1.5), $"closed after {watch.Elapsed}");
            Assert.True(total == 0 || buffer[0] == 0x15, "expected nothing or a TLS alert, got " + Convert.ToHexString(buffer, 0, total));
        }

        // The listener still serves devices.
        var device = await host.ProvisionAsync(TrellisHost.Unique("tlsok"), TrellisHost.Unique("pol"), Policies.PerThing, ct);
        var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device), "-t", $"devices/{device.ThingName}/t", "-m", "x", "-q", "1"], Timeout, cancellationToken: ct);
        Assert.True(pub.ExitCode == 0, pub.Output);
    }

    /// <summary>Reads until the server closes the connection (a FIN or a reset); returns the bytes read.</summary>
    private static async Task<int> ReadUntilClosedAsync(NetworkStream stream, byte[] buffer, CancellationToken ct)
    {
        var total = 0;
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer.AsMemory(total), ct).AsTask().WaitAsync(Timeout, ct)) > 0)
            {
                total += n;
            }
        }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
        }

        return total;
    }
}
