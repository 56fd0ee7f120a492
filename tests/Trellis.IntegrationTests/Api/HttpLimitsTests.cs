using System.Text.Json;
using Trellis.IntegrationTests.TestKit;
using Trellis.Server;

namespace Trellis.IntegrationTests.Api;

/// <summary>A server that receives one request body at a time and lets a second wait one second.</summary>
public sealed class OneBodyHost : TrellisHost
{
    protected override TrellisServerOptions Configure(TrellisServerOptions options) => options with
    {
        ConfigureApi = limits =>
        {
            limits.MaxConcurrentBodies = 1;
            limits.BodyQueueTimeout = TimeSpan.FromSeconds(1);
        },
    };
}

[CollectionDefinition(Name)]
public sealed class OneBodyGroup : ICollectionFixture<OneBodyHost>
{
    public const string Name = "one-body";
}

/// <summary>
/// What the API does before it reads a body: unsigned requests and oversized bodies are refused
/// from the headers (a client that announced 28 MB and sent 1 KiB gets its answer at once), a
/// body growing past the limit is cut off, bodies wait for a slot, and the web server's own
/// refusals carry AWS-style JSON like every other error. Raw sockets from Python, signed by botocore.
/// </summary>
[Collection(OneBodyGroup.Name)]
public sealed class HttpLimitsTests(OneBodyHost host)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Forty_unsigned_28_MB_requests_are_refused_from_their_headers()
    {
        var results = await RunAsync("unsigned_huge");
        Assert.Equal(40, results.GetArrayLength());
        foreach (var result in results.EnumerateArray())
        {
            Assert.True(result.GetProperty("status").GetInt32() == 403, result.ToString());
            Assert.Equal("MissingAuthenticationTokenException", result.GetProperty("type").GetString());
        }
    }

    [Fact]
    public async Task A_signed_body_over_the_limit_is_refused_before_it_is_read_or_as_soon_as_it_passes_it()
    {
        var announced = (await RunAsync("signed_huge"))[0];
        Assert.True(announced.GetProperty("status").GetInt32() == 413, announced.ToString());
        Assert.Equal("RequestEntityTooLargeException", announced.GetProperty("type").GetString());
        Assert.Contains("at most 1048576", announced.GetProperty("message").GetString(), StringComparison.Ordinal);

        var chunked = (await RunAsync("signed_chunked"))[0];
        Assert.True(chunked.GetProperty("status").GetInt32() == 413, chunked.ToString());
        Assert.Equal("RequestEntityTooLargeException", chunked.GetProperty("type").GetString());
    }

    [Fact]
    public async Task A_body_waits_for_a_slot_and_is_throttled_when_none_frees()
    {
        var second = (await RunAsync("slow_then_second"))[0];
        Assert.True(second.GetProperty("status").GetInt32() == 429, second.ToString());
        Assert.Equal("ThrottlingException", second.GetProperty("type").GetString());
    }

    [Fact]
    public async Task The_web_servers_own_refusals_carry_aws_error_json()
    {
        using var http = new HttpClient();
        var name = new string('a', 10_000);
        using var longName = await http.GetAsync($"{host.Endpoint}/things/{name}", Ct);
        Assert.Equal(414, (int)longName.StatusCode);
        Assert.Equal("RequestUriTooLongException", longName.Headers.GetValues("x-amzn-ErrorType").Single());
        Assert.Contains("at most 8192", await longName.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);

        // Past Kestrel's own request-line limit, and a NUL in a header: Kestrel refuses these itself.
        foreach (var (request, status, type) in new[]
        {
            ($"GET /things/{new string('a', 40_000)} HTTP/1.1\r\nHost: x\r\n\r\n", 414, "RequestUriTooLongException"),
            ("GET /things/ab HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", 400, "InvalidRequestException"),
            ("GET /things/a%00b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "InvalidRequestException"),
        })
        {
            using var client = new System.Net.Sockets.TcpClient();
            await client.ConnectAsync("127.0.0.1", host.HttpPort, Ct);
            var stream = client.GetStream();
            await stream.WriteAsync(System.Text.Encoding.Latin1.GetBytes(request), Ct);
            using var reader = new StreamReader(stream, System.Text.Encoding.UTF8);
            var answer = await reader.ReadToEndAsync(Ct);
            Assert.StartsWith($"HTTP/1.1 {status} ", answer, StringComparison.Ordinal);
            Assert.Contains($"x-amzn-ErrorType: {type}\r\n", answer, StringComparison.Ordinal);
            var body = JsonDocument.Parse(answer[(answer.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..]);
            Assert.False(string.IsNullOrEmpty(body.RootElement.GetProperty("message").GetString()));
        }

        // The server still serves.
        using var health = await http.GetAsync($"{host.Endpoint}/health", Ct);
        Assert.Equal(200, (int)health.StatusCode);
    }

    [Fact]
    public async Task The_websocket_ports_own_answers_carry_aws_error_json()
    {
        // The WebSocket listener's own refusals: a path other than /mqtt, and /mqtt without an upgrade.
        using var http = new HttpClient();
        foreach (var (path, status, type, text) in new[]
        {
            ("/things", 404, "UnknownOperationException", "--http port"),
            ("/mqtt", 426, "InvalidRequestException", "subprotocol 'mqtt'"),
        })
        {
            using var answer = await http.GetAsync($"http://127.0.0.1:{host.WsPort}{path}", Ct);
            Assert.Equal(status, (int)answer.StatusCode);
            Assert.Equal(type, answer.Headers.GetValues("x-amzn-ErrorType").Single());
            Assert.Contains(text, JsonDocument.Parse(await answer.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("message").GetString(), StringComparison.Ordinal);
        }

        // Kestrel's own refusal on that port: a NUL in a header of the upgrade request.
        using var client = new System.Net.Sockets.TcpClient();
        await client.ConnectAsync("127.0.0.1", host.WsPort, Ct);
        var stream = client.GetStream();
        await stream.WriteAsync(System.Text.Encoding.Latin1.GetBytes("GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nX-A: a\0b\r\n\r\n"), Ct);
        using var reader = new StreamReader(stream, System.Text.Encoding.UTF8);
        var refusal = await reader.ReadToEndAsync(Ct);
        Assert.StartsWith("HTTP/1.1 400 ", refusal, StringComparison.Ordinal);
        Assert.Contains("x-amzn-ErrorType: InvalidRequestException\r\n", refusal, StringComparison.Ordinal);
        Assert.Contains("malformed", JsonDocument.Parse(refusal[(refusal.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..]).RootElement.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    private async Task<JsonElement> RunAsync(string scenario)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "Scripts", "http_limits.py");
        var result = await ExternalTool.RunAsync("python3", [script, "127.0.0.1", host.HttpPort.ToString(System.Globalization.CultureInfo.InvariantCulture), scenario], TimeSpan.FromSeconds(120), host.AwsEnvironment, Ct);
        Assert.True(result.ExitCode == 0, result.Output);
        return JsonDocument.Parse(result.Stdout).RootElement.Clone();
    }
}
