namespace Trellis.Server;

/// <summary>What <c>trellis serve</c> takes as flags and <c>TRELLIS_*</c> environment variables.</summary>
public sealed record TrellisServerOptions
{
    /// <summary>Data folder: registry database, CA, server certificate, credentials.</summary>
    public string DataDirectory { get; init; } = "./data";

    /// <summary>MQTT over plain TCP, HOST:PORT ("off" disables it).</summary>
    public string Mqtt { get; init; } = "0.0.0.0:1883";

    /// <summary>MQTT over TLS with client certificates, HOST:PORT ("off" disables it).</summary>
    public string Mqtts { get; init; } = "0.0.0.0:8883";

    /// <summary>MQTT over WebSockets at path /mqtt, HOST:PORT ("off" disables it).</summary>
    public string WebSocket { get; init; } = "0.0.0.0:8083";

    /// <summary>CoAP over UDP for constrained devices, HOST:PORT ("off" disables it).</summary>
    public string Coap { get; init; } = "0.0.0.0:5683";

    /// <summary>CoAP over DTLS 1.2 (a thing's pre-shared key or its certificate), HOST:PORT ("off" disables it).</summary>
    public string Coaps { get; init; } = "0.0.0.0:5684";

    /// <summary>Seconds a CoAP device stays online after its last request, unless it observes something (docs/coap.md).</summary>
    public int CoapIdleSeconds { get; init; } = 300;

    /// <summary>Management API (AWS IoT control-plane routes), HOST:PORT.</summary>
    public string Http { get; init; } = "0.0.0.0:8080";

    /// <summary>The same API and firmware downloads over TLS with the server certificate, HOST:PORT ("off", the default, disables it); download links then use it.</summary>
    public string Https { get; init; } = "off";

    /// <summary>Extra host names or IP addresses for the server certificate (localhost and 127.0.0.1 are always in it).</summary>
    public IReadOnlyList<string> Hostnames { get; init; } = [];

    /// <summary>Accept MQTT clients without credentials on the plain listeners (development only).</summary>
    public bool AllowAnonymous { get; init; }

    /// <summary>Largest MQTT packet accepted, in bytes.</summary>
    public int MaxPacketBytes { get; init; } = 128 * 1024;

    /// <summary>Threads serving the plain-TCP MQTT listener with their own epoll loops (Linux; default one per CPU); 0 = the runtime's socket engine.</summary>
    public int MqttThreads { get; init; } = Trellis.Broker.BrokerOptions.DefaultEventLoops;

    /// <summary>Further broker settings for embedding hosts and tests (timeouts, queue sizes).</summary>
    public Action<Trellis.Broker.BrokerOptions>? ConfigureBroker { get; init; }

    /// <summary>Shadow limits (document size, nesting depth, updates per second per thing).</summary>
    public Trellis.Shadows.ShadowOptions Shadows { get; init; } = new();

    /// <summary>Fleet provisioning: ownership token lifetime, webhook timeout.</summary>
    public Trellis.Registry.Provisioning.ProvisioningOptions Provisioning { get; init; } = new();

    /// <summary>The rules' outbox: how many messages and how long they may wait for an external target.</summary>
    public Trellis.Rules.OutboxOptions Outbox { get; init; } = new();

    /// <summary>Messages that may wait for the rules engine; beyond it publishers wait (their acknowledgement is held) until the rules catch up.</summary>
    public int RulesQueueCapacity { get; init; } = 100_000;

    /// <summary>Memory the time-series store (DuckDB) may hold for its block cache and queries, in MiB; beyond it, it evicts and spills to disk.</summary>
    public int TelemetryMemoryMiB { get; init; } = 256;

    /// <summary>Further limits of the telemetry SQL endpoint for embedding hosts and tests (after TRELLIS_TelemetryQuery__* variables).</summary>
    public Action<Trellis.Telemetry.TelemetryQueryOptions>? ConfigureTelemetryQuery { get; init; }

    /// <summary>The SMTP server for email notifications, for embedding hosts and tests (after TRELLIS_Smtp__* variables).</summary>
    public Action<Trellis.Rules.Notifications.SmtpOptions>? ConfigureSmtp { get; init; }

    /// <summary>Further HTTP API limits for embedding hosts and tests (after TRELLIS_Api__* variables).</summary>
    public Action<Trellis.Api.ApiLimits>? ConfigureApi { get; init; }

    /// <summary>Count each client's activity for Device Defender's cloud-side metrics (on by default; off leaves only device-side reports).</summary>
    public bool DeviceDefender { get; init; } = true;

    /// <summary>Minimum log level: Trace, Debug, Information, Warning, Error.</summary>
    public string LogLevel { get; init; } = "Information";
}
