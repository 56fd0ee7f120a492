using System.Text.Json;
using Microsoft.Extensions.Logging;
using Trellis.Server;

namespace Trellis.IntegrationTests.TestKit;

/// <summary>
/// The real server in-process on 127.0.0.1 with free ports and a temporary data folder. Tests share
/// one per collection and isolate themselves with unique names.
/// </summary>
public class TrellisHost : IAsyncLifetime
{
    private static int _counter;
    private readonly Action<Trellis.Broker.BrokerOptions>? _configureBroker;

    // Errors logged by a server instance that a restart replaced: the check at the end still sees them.
    private readonly List<string> _errorsBeforeRestart = [];

    public TrellisHost()
        : this(allowAnonymous: false)
    {
    }

    protected TrellisHost(bool allowAnonymous, Action<Trellis.Broker.BrokerOptions>? configureBroker = null)
    {
        AllowAnonymous = allowAnonymous;
        _configureBroker = configureBroker;
        DataDirectory = Path.Combine(Path.GetTempPath(), $"trellis-test-{Environment.ProcessId}-{Interlocked.Increment(ref _counter)}");
    }

    public bool AllowAnonymous { get; }

    public string DataDirectory { get; }

    public TrellisServer Server { get; private set; } = null!;

    public LogSink Logs { get; private set; } = new();

    public int MqttPort => Server.Port("mqtt");

    public int MqttsPort => Server.Port("mqtts");

    public int WsPort => Server.Port("ws");

    public int HttpPort => Server.Port("http");

    public string Endpoint => $"http://127.0.0.1:{HttpPort}";

    public string CaPath => Server.Data.CaCertificatePath;

    /// <summary>Environment for boto3 and the AWS CLI: the server's credentials file and profile.</summary>
    public Dictionary<string, string> AwsEnvironment => new()
    {
        ["AWS_SHARED_CREDENTIALS_FILE"] = Server.Data.CredentialsPath,
        ["AWS_PROFILE"] = "trellis",
        ["AWS_DEFAULT_REGION"] = "us-east-1",
        ["AWS_EC2_METADATA_DISABLED"] = "true",
    };

    public virtual async ValueTask InitializeAsync() => await StartAsync();

    public async Task StartAsync()
    {
        Logs = new LogSink();
        Server = await TrellisServer.StartAsync(
            Configure(new TrellisServerOptions
            {
                DataDirectory = DataDirectory,
                Mqtt = "127.0.0.1:0",
                Mqtts = "127.0.0.1:0",
                WebSocket = "127.0.0.1:0",
                Coap = "127.0.0.1:0",
                Coaps = "127.0.0.1:0",
                CoapIdleSeconds = 3,
                Http = "127.0.0.1:0",
                AllowAnonymous = AllowAnonymous,
                ConfigureBroker = b =>
                {
                    b.ConnectTimeoutSeconds = 2;
                    b.IncompletePacketTimeoutSeconds = 2;
                    _configureBroker?.Invoke(b);
                },
            }),
            logging =>
            {
                logging.ClearProviders();
                logging.AddProvider(Logs);
            });
    }

    /// <summary>
    /// A request signed in-process with the admin key (the server's own SigV4 signer), for a test that
    /// needs more than signed_request.py gives: many requests fast, a streamed body's declared hash
    /// (<paramref name="payloadHash"/>, e.g. UNSIGNED-PAYLOAD; by default the body's SHA-256).
    /// </summary>
    public HttpRequestMessage AdminSignedRequest(HttpMethod method, string path, byte[] body, string contentType, string? payloadHash = null)
    {
        var keyId = Server.AccessKeys.AdminAccessKeyId;
        var headers = Trellis.Security.SigV4.SigV4Signer.SignPayloadHash(method.Method, $"127.0.0.1:{HttpPort.ToString(System.Globalization.CultureInfo.InvariantCulture)}", path, string.Empty,
            payloadHash ?? Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(body)), keyId, Server.AccessKeys.SecretFor(keyId)!, "us-east-1", "iot", DateTimeOffset.UtcNow);
        var request = new HttpRequestMessage(method, Endpoint + path) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(contentType);
        foreach (var (header, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(header, value);
        }

        return request;
    }

    /// <summary>
    /// Waits until <paramref name="clientId"/> is connected and its session holds <paramref name="filter"/>
    /// (without one: at least <paramref name="filters"/> filters). The broker records a subscription
    /// before its SUBACK, so a subscriber is ready once this returns. Fails the test after 30 s, saying
    /// what the broker holds and what <paramref name="peer"/> (the subscribing tool) printed.
    /// </summary>
    public async Task WaitSubscribedAsync(string clientId, ExternalTool.Background? peer = null, string? filter = null, int filters = 1)
    {
        var broker = Server.Broker;
        bool Ready()
        {
            var held = broker.SubscriptionsOf(clientId);
            return (filter is null ? held.Count >= filters : held.Contains(filter)) && broker.ConnectedClientIds().Contains(clientId);
        }

        if (!await Eventually.TrueAsync(Ready, SubscribeTimeout, Xunit.TestContext.Current.CancellationToken))
        {
            Xunit.Assert.Fail($"{clientId} did not subscribe to {filter ?? $"{filters} filter(s)"} within {SubscribeTimeout.TotalSeconds} s "
                + $"(connected: {broker.ConnectedClientIds().Contains(clientId)}; its session holds [{string.Join(", ", broker.SubscriptionsOf(clientId))}])"
                + PeerReport(peer));
        }
    }

    /// <summary>
    /// Waits until <paramref name="clients"/> live connections hold <paramref name="filter"/>, for
    /// subscribers whose client ids the test does not choose; fails the test after 30 s.
    /// </summary>
    public async Task WaitSubscribersAsync(string filter, int clients = 1, ExternalTool.Background? peer = null)
    {
        var broker = Server.Broker;
        int Holding() => broker.ConnectedClientIds().Count(c => broker.SubscriptionsOf(c).Contains(filter));
        if (!await Eventually.TrueAsync(() => Holding() >= clients, SubscribeTimeout, Xunit.TestContext.Current.CancellationToken))
        {
            Xunit.Assert.Fail($"{Holding()} of {clients} subscriber(s) to {filter} are connected after {SubscribeTimeout.TotalSeconds} s" + PeerReport(peer));
        }
    }

    private static readonly TimeSpan SubscribeTimeout = TimeSpan.FromSeconds(30);

    private static string PeerReport(ExternalTool.Background? peer) =>
        peer is null ? string.Empty : $"; the subscriber {(peer.HasExited ? $"exited with {peer.ExitCode}" : "is still running")} and printed:\n{string.Join('\n', peer.Lines)}\n{peer.Stderr}";

    /// <summary>Further server options for a derived host (short timeouts for a test).</summary>
    protected virtual TrellisServerOptions Configure(TrellisServerOptions options) => options;

    /// <summary>Stops the server (as on SIGTERM) and starts it again on the same data folder.</summary>
    public async Task RestartAsync()
    {
        await Server.StopAsync();
        await Server.DisposeAsync();
        _errorsBeforeRestart.AddRange(Logs.Errors.Select(e => "(before a restart) " + e));
        await StartAsync();
    }

    public virtual async ValueTask DisposeAsync()
    {
        await Server.StopAsync();
        await Server.DisposeAsync();
        var errors = _errorsBeforeRestart.Concat(Logs.Errors).ToList();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }

        GC.SuppressFinalize(this);
        if (errors.Count > 0)
        {
            throw new InvalidOperationException("The server logged unexpected errors:\n" + string.Join('\n', errors));
        }
    }

    /// <summary>Creates a thing, an active certificate and a policy with boto3, as the AWS tutorials do.</summary>
    public async Task<ProvisionedDevice> ProvisionAsync(string thingName, string policyName, string policyJson, CancellationToken cancellationToken)
    {
        var policyFile = Path.Combine(DataDirectory, $"{policyName}.json");
        await File.WriteAllTextAsync(policyFile, policyJson, cancellationToken);
        var script = Path.Combine(AppContext.BaseDirectory, "Scripts", "provision.py");
        var result = await ExternalTool.RunAsync("python3", [script, Endpoint, thingName, Path.Combine(DataDirectory, "devices"), policyName, policyFile], TimeSpan.FromSeconds(60), AwsEnvironment, cancellationToken);
        Assert.True(result.ExitCode == 0, "provision.py failed: " + result.Output);
        using var json = JsonDocument.Parse(result.Stdout);
        var root = json.RootElement;
        return new ProvisionedDevice(thingName, root.GetProperty("certificateId").GetString()!, root.GetProperty("certificateArn").GetString()!, root.GetProperty("cert").GetString()!, root.GetProperty("key").GetString()!);
    }

    /// <summary>An API user with <paramref name="role"/> (POST /api/users as the admin); its key id and secret.</summary>
    public async Task<(string KeyId, string Secret)> CreateApiUserAsync(string name, string role, CancellationToken cancellationToken)
    {
        var created = await SignedRequestAsync("POST", "/api/users", $$"""{"name":"{{name}}","role":"{{role}}"}""", cancellationToken);
        Assert.Equal(200, created["status"]!.GetValue<int>());
        return (created["body"]!["accessKeyId"]!.GetValue<string>(), created["body"]!["secretAccessKey"]!.GetValue<string>());
    }

    /// <summary>An active certificate made with boto3 and <paramref name="policyJson"/> attached, its PEM files written under the data folder: a fleet-provisioning claim.</summary>
    public async Task<(string Id, string CertPath, string KeyPath)> CreateClaimAsync(string policyJson, CancellationToken cancellationToken)
    {
        var policy = Unique("claimpol");
        var created = (await IotCallsAsync([("create_keys_and_certificate", new { setAsActive = true })], cancellationToken))[0]!["body"]!;
        var attach = await IotCallsAsync([("create_policy", new { policyName = policy, policyDocument = policyJson }), ("attach_policy", new { policyName = policy, target = created["certificateArn"]!.GetValue<string>() })], cancellationToken);
        Assert.All(attach, r => Assert.Equal(200, r!["status"]!.GetValue<int>()));
        var dir = Directory.CreateDirectory(Path.Combine(DataDirectory, Unique("claim"))).FullName;
        var cert = Path.Combine(dir, "claim.pem");
        var key = Path.Combine(dir, "claim.key");
        await File.WriteAllTextAsync(cert, created["certificatePem"]!.GetValue<string>(), cancellationToken);
        await File.WriteAllTextAsync(key, created["keyPair"]!["PrivateKey"]!.GetValue<string>(), cancellationToken);
        return (created["certificateId"]!.GetValue<string>(), cert, key);
    }

    /// <summary>mosquitto_* arguments for a TLS connection as <paramref name="device"/>.</summary>
    public List<string> TlsArgs(ProvisionedDevice device, string? clientId = null, string version = "mqttv311") =>
    [
        "-h", "127.0.0.1", "-p", MqttsPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
        "--cafile", CaPath, "--cert", device.CertPath, "--key", device.KeyPath,
        "-i", clientId ?? device.ThingName, "-V", version,
    ];

    /// <summary>mosquitto_* arguments for the plain listener with the admin access key as user name and password.</summary>
    public List<string> AdminArgs(string clientId, string version = "mqttv311") =>
    [
        "-h", "127.0.0.1", "-p", MqttPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
        "-u", Server.AccessKeys.AdminAccessKeyId, "-P", Server.AccessKeys.SecretFor(Server.AccessKeys.AdminAccessKeyId)!,
        "-i", clientId, "-V", version,
    ];

    /// <summary>Runs boto3 "iot" calls in order (Scripts/iot_calls.py); one result per call: status, body or error.</summary>
    public async Task<System.Text.Json.Nodes.JsonNode?[]> IotCallsAsync((string Call, object Args)[] calls, CancellationToken cancellationToken, (string KeyId, string Secret)? credentials = null)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "Scripts", "iot_calls.py");
        var json = JsonSerializer.Serialize(calls.Select(c => new { call = c.Call, args = c.Args }));
        var result = await ExternalTool.RunAsync("python3", [script, Endpoint, json], TimeSpan.FromSeconds(60), AwsEnvironmentFor(credentials), cancellationToken);
        Assert.True(result.ExitCode == 0, "iot_calls.py failed: " + result.Output);
        return [.. System.Text.Json.Nodes.JsonNode.Parse(result.Stdout)!.AsArray()];
    }

    /// <summary>One SigV4-signed request with botocore's signer (Scripts/signed_request.py), for routes boto3 has no method for.</summary>
    public async Task<System.Text.Json.Nodes.JsonNode> SignedRequestAsync(string method, string path, string? body, CancellationToken cancellationToken, (string KeyId, string Secret)? credentials = null)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "Scripts", "signed_request.py");
        List<string> args = [script, Endpoint, method, path];
        if (body is not null)
        {
            args.Add(body);
        }

        var result = await ExternalTool.RunAsync("python3", args, TimeSpan.FromSeconds(60), AwsEnvironmentFor(credentials), cancellationToken);
        Assert.True(result.ExitCode == 0, "signed_request.py failed: " + result.Output);
        return System.Text.Json.Nodes.JsonNode.Parse(result.Stdout)!;
    }

    /// <summary>The AWS environment for the data folder's admin key, or for another API user's key.</summary>
    public Dictionary<string, string> AwsEnvironmentFor((string KeyId, string Secret)? credentials)
    {
        var env = AwsEnvironment;
        if (credentials is { } given)
        {
            env.Remove("AWS_PROFILE");
            env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null";
            env["AWS_ACCESS_KEY_ID"] = given.KeyId;
            env["AWS_SECRET_ACCESS_KEY"] = given.Secret;
        }

        return env;
    }

    public static string Unique(string prefix) => $"{prefix}{Guid.NewGuid():N}"[..(prefix.Length + 12)];
}
