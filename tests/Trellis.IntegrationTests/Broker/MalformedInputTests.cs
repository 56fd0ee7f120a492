using System.Text;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>
/// Hostile bytes on the MQTT port: each gets the answer the MQTT specification asks for, and an
/// unrelated client keeps being served throughout.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class MalformedInputTests(TrellisHost host) : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private ExternalTool.Background? _canary;
    private readonly string _canaryTopic = TrellisHost.Unique("canary/");
    private int _canaryCount;

    public async ValueTask InitializeAsync()
    {
        var canary = TrellisHost.Unique("canary");
        _canary = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(canary), "-t", _canaryTopic, "-q", "1"]);
        await host.WaitSubscribedAsync(canary, _canary, _canaryTopic);
    }

    public ValueTask DisposeAsync()
    {
        _canary?.Dispose();
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task Garbage_bytes_close_the_connection_without_a_connack()
    {
        var (bytes, closed) = await SendRawAsync([0xFF, 0x13, 0x37, 0x00, 0x42, 0xFF, 0xFF], CancellationToken);

        Assert.True(closed);
        Assert.Empty(bytes);
        await AssertCanaryServedAsync();
    }

    [Fact]
    public async Task Remaining_length_longer_than_four_bytes_closes_the_connection()
    {
        using var raw = await ConnectedAsync(CancellationToken);
        await raw.SendAsync([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], CancellationToken);

        var (_, closed) = await raw.ReadUntilClosedAsync(Timeout, CancellationToken);

        Assert.True(closed);
        await AssertCanaryServedAsync();
    }

    [Fact]
    public async Task Declared_length_over_the_maximum_gets_disconnect_packet_too_large_on_mqtt5()
    {
        using var raw = await ConnectedAsync(CancellationToken, level: 5);

        // Declares 1 MiB against the 128 KiB maximum; the body never comes.
        await raw.SendAsync([0x30, 0x80, 0x80, 0x40], CancellationToken);
        var (bytes, closed) = await raw.ReadUntilClosedAsync(Timeout, CancellationToken);

        Assert.True(closed);
        Assert.Equal(0xE0, bytes[0]);
        Assert.Equal(0x95, bytes[2]);
        await AssertCanaryServedAsync();
    }

    [Fact]
    public async Task Oversized_publish_from_mosquitto_is_refused_and_others_keep_working()
    {
        var payload = Path.Combine(host.DataDirectory, "big.bin");
        await File.WriteAllBytesAsync(payload, new byte[200 * 1024], CancellationToken);

        var result = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("big")), "-t", _canaryTopic, "-f", payload, "-q", "1"], Timeout, cancellationToken: CancellationToken);

        Assert.True(result.ExitCode is not (0 or -1), $"expected a refusal, not success or a time-out (-1): exit {result.ExitCode}: {result.Output}");
        Assert.True(host.Logs.Contains("exceeds Broker:MaxPacketBytes"));
        await AssertCanaryServedAsync();
    }

    [Theory]
    [InlineData("MQTT", 7, false, 0x01)]
    [InlineData("MQTX", 4, false, 0x01)]
    [InlineData("MQTX", 5, true, 0x84)]
    public async Task Wrong_protocol_name_or_level_gets_the_unsupported_version_connack(string protocol, byte level, bool v5, byte expected)
    {
        using var raw = await RawMqtt.ConnectAsync(host.MqttPort, CancellationToken);
        await raw.SendAsync(RawMqtt.Connect("bad-proto", null, null, level, protocol), CancellationToken);

        var connack = await raw.ReadPacketAsync(Timeout, CancellationToken);
        var (_, closed) = await raw.ReadUntilClosedAsync(Timeout, CancellationToken);

        Assert.Equal(0x20, connack[0]);
        Assert.Equal(expected, v5 ? connack[3] : connack[3]);
        Assert.True(closed);
        await AssertCanaryServedAsync();
    }

    [Fact]
    public async Task Packet_before_connect_closes_the_connection_without_a_connack()
    {
        var (bytes, closed) = await SendRawAsync(RawMqtt.Publish("a/b"u8.ToArray(), [1]), CancellationToken);

        Assert.True(closed);
        Assert.Empty(bytes);
        await AssertCanaryServedAsync();
    }

    [Fact]
    public async Task Invalid_utf8_in_a_topic_gets_disconnect_malformed_packet()
    {
        using var raw = await ConnectedAsync(CancellationToken, level: 5);
        await raw.SendAsync(RawMqtt.Publish([(byte)'a', 0xC3, 0x28], [1], v5: true), CancellationToken);

        var (bytes, closed) = await raw.ReadUntilClosedAsync(Timeout, CancellationToken);

        Assert.True(closed);
        Assert.Equal([0xE0], bytes.Take(1));
        Assert.Equal(0x81, bytes[2]);
        await AssertCanaryServedAsync();
    }

    [Fact]
    public async Task Wildcard_in_a_publish_topic_gets_disconnect_topic_name_invalid()
    {
        using var raw = await ConnectedAsync(CancellationToken, level: 5);
        await raw.SendAsync(RawMqtt.Publish(Encoding.UTF8.GetBytes(_canaryTopic + "/#"), [1], v5: true), CancellationToken);

        var (bytes, closed) = await raw.ReadUntilClosedAsync(Timeout, CancellationToken);

        Assert.True(closed);
        Assert.Equal(0x90, bytes[2]);
        await AssertCanaryServedAsync();
    }

    [Fact]
    public async Task Wildcard_in_a_publish_topic_closes_an_mqtt311_connection()
    {
        using var raw = await ConnectedAsync(CancellationToken);
        await raw.SendAsync(RawMqtt.Publish(Encoding.UTF8.GetBytes(_canaryTopic + "/+"), [1]), CancellationToken);

        var (bytes, closed) = await raw.ReadUntilClosedAsync(Timeout, CancellationToken);

        Assert.True(closed);
        Assert.Empty(bytes);
        await AssertCanaryServedAsync();
    }

    [Fact]
    public async Task Half_sent_packet_is_closed_after_the_incomplete_packet_timeout()
    {
        using var raw = await ConnectedAsync(CancellationToken);

        // A PUBLISH that declares 100 bytes and sends 5.
        await raw.SendAsync([0x30, 100, 0x00, 0x03, (byte)'a', (byte)'/', (byte)'b'], CancellationToken);
        var (_, closed) = await raw.ReadUntilClosedAsync(TimeSpan.FromSeconds(8), CancellationToken);

        Assert.True(closed);
        await AssertCanaryServedAsync();
    }

    [Fact]
    public async Task Connection_that_never_sends_connect_is_closed()
    {
        using var raw = await RawMqtt.ConnectAsync(host.MqttPort, CancellationToken);

        var (_, closed) = await raw.ReadUntilClosedAsync(TimeSpan.FromSeconds(8), CancellationToken);

        Assert.True(closed);
    }

    [Fact]
    public async Task Silent_client_is_disconnected_after_one_and_a_half_keep_alives()
    {
        using var raw = await RawMqtt.ConnectAsync(host.MqttPort, CancellationToken);
        var user = host.Server.AccessKeys.AdminAccessKeyId;
        var connect = RawMqtt.Connect(TrellisHost.Unique("ka"), user, host.Server.AccessKeys.SecretFor(user));
        connect[11] = 1; // keep-alive 1 s (bytes 10-11 of this CONNECT)

        // Timed from before the CONNECT: the server's clock starts no earlier, so a test thread slow
        // to read the CONNACK cannot make a correct close look early.
        var started = DateTime.UtcNow;
        await raw.SendAsync(connect, CancellationToken);
        Assert.Equal(0x20, (await raw.ReadPacketAsync(Timeout, CancellationToken))[0]);

        var (_, closed) = await raw.ReadUntilClosedAsync(TimeSpan.FromSeconds(8), CancellationToken);

        Assert.True(closed);
        Assert.InRange((DateTime.UtcNow - started).TotalSeconds, 1.4, 3.5);
        await AssertCanaryServedAsync();
    }

    [Fact]
    public async Task Certificate_from_another_ca_is_refused_in_the_tls_handshake()
    {
        var dir = Path.Combine(host.DataDirectory, TrellisHost.Unique("rogue"));
        Directory.CreateDirectory(dir);
        var key = Path.Combine(dir, "rogue.key");
        var cert = Path.Combine(dir, "rogue.crt");
        var gen = await ExternalTool.RunAsync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=rogue"], Timeout, cancellationToken: CancellationToken);
        Assert.True(gen.ExitCode == 0, gen.Output);

        var result = await ExternalTool.RunAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", host.MqttsPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "--cafile", host.CaPath, "--cert", cert, "--key", key, "-i", "rogue", "-t", "x", "-m", "1"], Timeout, cancellationToken: CancellationToken);

        Assert.True(result.ExitCode is not (0 or -1), $"expected a refusal, not success or a time-out (-1): exit {result.ExitCode}: {result.Output}");
        Assert.DoesNotContain("rogue", host.Server.Broker.ConnectedClientIds());
        await AssertCanaryServedAsync();
    }

    private static CancellationToken CancellationToken => TestContext.Current.CancellationToken;

    private async Task<RawMqtt> ConnectedAsync(CancellationToken ct, byte level = 4)
    {
        var raw = await RawMqtt.ConnectAsync(host.MqttPort, ct);
        var user = host.Server.AccessKeys.AdminAccessKeyId;
        await raw.SendAsync(RawMqtt.Connect(TrellisHost.Unique("raw"), user, host.Server.AccessKeys.SecretFor(user), level), ct);
        var connack = await raw.ReadPacketAsync(Timeout, ct);
        Assert.Equal(0x20, connack[0]);
        Assert.Equal(0, connack[3]);
        return raw;
    }

    private async Task<(byte[] Bytes, bool Closed)> SendRawAsync(byte[] bytes, CancellationToken ct)
    {
        using var raw = await RawMqtt.ConnectAsync(host.MqttPort, ct);
        await raw.SendAsync(bytes, ct);
        return await raw.ReadUntilClosedAsync(Timeout, ct);
    }

    private async Task AssertCanaryServedAsync()
    {
        var marker = $"alive-{Interlocked.Increment(ref _canaryCount)}";
        var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("p")), "-t", _canaryTopic, "-m", marker, "-q", "1"], Timeout, cancellationToken: CancellationToken);
        Assert.True(pub.ExitCode == 0, pub.Output);
        Assert.True(await _canary!.WaitForLineAsync(l => l == marker, Timeout, CancellationToken), "the unrelated subscriber stopped being served");
    }
}
