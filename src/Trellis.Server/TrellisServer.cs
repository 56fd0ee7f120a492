using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Trellis.Api;
using Trellis.Api.Aws;
using Trellis.Broker;
using Trellis.Broker.Hosting;
using Trellis.Broker.Identity;
using Trellis.Broker.Persistence;
using Trellis.Registry;
using Trellis.Registry.Provisioning;
using Trellis.Rules;
using Trellis.Security.Pki;
using Trellis.Security.SigV4;
using Trellis.Shadows;
using Trellis.Storage;

namespace Trellis.Server;

/// <summary>
/// The one program: broker, registry and management API over one data folder. Used by
/// <c>trellis serve</c> and, in-process, by the integration tests.
/// </summary>
public sealed class TrellisServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Dictionary<string, ListenOptions> _listeners;

    private TrellisServer(WebApplication app, Dictionary<string, ListenOptions> listeners, DataFolder data, IReadOnlyList<string> hostnames)
    {
        _app = app;
        _listeners = listeners;
        Data = data;
        Hostnames = hostnames;
    }

    public DataFolder Data { get; }

    public IReadOnlyList<string> Hostnames { get; }

    public IServiceProvider Services => _app.Services;

    public MqttBroker Broker => _app.Services.GetRequiredService<MqttBroker>();

    public RegistryService Registry => _app.Services.GetRequiredService<RegistryService>();

    public AccessKeys AccessKeys => _app.Services.GetRequiredService<AccessKeys>();

    /// <summary>The bound port of a listener ("mqtt", "mqtts", "ws", "http", "https"), or 0 when it is off.</summary>
    public int Port(string listener) => listener switch
    {
        "mqtt" => _app.Services.GetService<MqttSocketListener>()?.Port ?? 0,
        "coap" => _app.Services.GetService<CoapWorker>()?.Port ?? 0,
        "coaps" => _app.Services.GetService<CoapWorker>()?.SecurePort ?? 0,
        "mqtts" when _app.Services.GetKeyedService<MqttSocketListener>("mqtts") is { } tls => tls.Port,
        _ => _listeners.TryGetValue(listener, out var options) ? options.IPEndPoint!.Port : 0,
    };

    /// <summary>The epoll loops serving the plain-TCP MQTT listener; 0 when it is off or served by the .NET socket engine.</summary>
    public int MqttEventLoops => _app.Services.GetService<MqttSocketListener>()?.EventLoops ?? 0;

    /// <summary>
    /// Settings of one section: <paramref name="settings"/> as given, then every property that a
    /// <c>TRELLIS_&lt;Section&gt;__&lt;Name&gt;</c> variable names, then <paramref name="configure"/>
    /// (flags, an embedding host), validated by their ranges. A value out of range stops start-up naming it.
    /// </summary>
    /// <remarks>
    /// <paramref name="bind"/> is <c>(c, s) =&gt; c.Bind(s)</c> at each call: there the type is known, so
    /// the configuration binding generator writes the binding at build time (no reflection, which a
    /// Native AOT build would not have).
    /// </remarks>
    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "The validator reads T's public properties and their range attributes, which DynamicallyAccessedMembers keeps.")]
    internal static T Settings<[System.Diagnostics.CodeAnalysis.DynamicallyAccessedMembers(System.Diagnostics.CodeAnalysis.DynamicallyAccessedMemberTypes.PublicProperties)] T>(
        string section, T settings, Action<IConfiguration, T> bind, Action<T>? configure)
        where T : class
    {
        try
        {
            bind(new ConfigurationBuilder().AddEnvironmentVariables("TRELLIS_").Build().GetSection(section), settings);
        }
        catch (InvalidOperationException e)
        {
            throw new ArgumentException($"TRELLIS_{section}__…: {e.Message}", e);
        }

        configure?.Invoke(settings);
        var errors = new List<System.ComponentModel.DataAnnotations.ValidationResult>();
        if (!System.ComponentModel.DataAnnotations.Validator.TryValidateObject(settings, new(settings), errors, validateAllProperties: true))
        {
            throw new ArgumentException($"{section} setting out of range: " + string.Join("; ", errors.Select(e => $"{string.Join(',', e.MemberNames)} ({e.ErrorMessage})")) + $". Fix the TRELLIS_{section}__… variable or the flag that sets it.");
        }

        return settings;
    }

    private static BrokerOptions BrokerSettings(TrellisServerOptions options) => Settings("Broker", new BrokerOptions(), static (c, s) => c.Bind(s), broker =>
    {
        broker.AllowAnonymous = options.AllowAnonymous || broker.AllowAnonymous;
        broker.MaxPacketBytes = options.MaxPacketBytes;
        broker.EventLoops = options.MqttThreads;
        options.ConfigureBroker?.Invoke(broker);
    });

    public static async Task<TrellisServer> StartAsync(TrellisServerOptions options, Action<ILoggingBuilder>? configureLogging = null, CancellationToken cancellationToken = default)
    {
        var mqtt = ListenAddress.Parse(options.Mqtt, "--mqtt");
        var mqtts = ListenAddress.Parse(options.Mqtts, "--mqtts");
        var ws = ListenAddress.Parse(options.WebSocket, "--ws");
        var http = ListenAddress.Parse(options.Http, "--http");
        var https = ListenAddress.Parse(options.Https, "--https");
        if (http is null && https is null)
        {
            throw new ArgumentException("--http and --https cannot both be off: the management API needs one (e.g. --https 0.0.0.0:8443 --http off).");
        }

        var coap = ListenAddress.Parse(options.Coap, "--coap");
        var coaps = ListenAddress.Parse(options.Coaps, "--coaps");
        if (options.CoapIdleSeconds is < 1 or > 86_400)
        {
            throw new ArgumentException($"--coap-idle must be between 1 and 86400 seconds, not {options.CoapIdleSeconds}.");
        }

        if (options.MqttThreads is < 0 or > 64)
        {
            throw new ArgumentException($"--mqtt-threads must be between 0 (the .NET socket engine) and 64, not {options.MqttThreads}.");
        }

        // Every port is tried before anything starts, so a port in use ends the start with one line
        // naming it and the flag to change (the listeners' own binds stay exclusive).
        ListenAddress.EnsureFree([(mqtt, "--mqtt", false), (mqtts, "--mqtts", false), (ws, "--ws", false), (http, "--http", false), (https, "--https", false), (coap, "--coap", true), (coaps, "--coaps", true)]);

        var data = new DataFolder(options.DataDirectory);
        var time = TimeProvider.System;
        var ca = CertificateAuthority.LoadOrCreate(data.PkiDirectory, time);
        await File.WriteAllTextAsync(data.CaCertificatePath, ca.CertificatePem + "\n", cancellationToken);
        var hostnames = new List<string> { "localhost", "127.0.0.1", "::1" };
        hostnames.AddRange(options.Hostnames.Where(h => !hostnames.Contains(h, StringComparer.OrdinalIgnoreCase)));
        var serverCertificate = ca.LoadOrCreateServerCertificate(data.PkiDirectory, hostnames);
        var database = new SqliteDatabase(data.RegistryPath, Schema.Migrations);
        var accessKeys = AccessKeys.LoadOrCreate(data.CredentialsPath);
        var brokerOptions = BrokerSettings(options);
        var telemetryQuery = Settings("TelemetryQuery", new Trellis.Telemetry.TelemetryQueryOptions(), static (c, s) => c.Bind(s), options.ConfigureTelemetryQuery);
        var apiLimits = Settings("Api", new ApiLimits(), static (c, s) => c.Bind(s), limits =>
        {
            // An HTTPS publish carries one MQTT message: the packet limit is its limit too.
            limits.MaxPublishBodyBytes = Math.Max(limits.MaxPublishBodyBytes, options.MaxPacketBytes);
            options.ConfigureApi?.Invoke(limits);
        });
        var registryOptions = new RegistryOptions { Region = brokerOptions.Region, AccountId = brokerOptions.AccountId };

        // Trellis reads no appsettings.json: without this the host watches the working directory,
        // recursively, for a change to one (a repository checkout: thousands of folders, and every
        // SQLite write in ./data woke the watcher, ~4 % of the CPU in a burst of TLS connects).
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = ["--hostBuilder:reloadConfigOnChange=false"] });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(c =>
        {
            c.SingleLine = true;
            c.TimestampFormat = "HH:mm:ss.fff ";
        });
        builder.Logging.SetMinimumLevel(Enum.Parse<LogLevel>(options.LogLevel, ignoreCase: true));
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.Hosting", LogLevel.Warning);
        configureLogging?.Invoke(builder.Logging);

        var services = builder.Services;
        services.AddSingleton(time);
        services.AddSingleton(apiLimits);
        services.AddSingleton<RequestBodyGate>();
        services.AddSingleton(data);
        services.AddSingleton(ca);
        services.AddSingleton(database);
        services.AddSingleton(accessKeys);
        services.AddSingleton(registryOptions);
        services.AddSingleton<RegistryService>();
        TrellisServer? server = null;
        services.AddSingleton(new IotEndpoints(() => server!.TlsEndpointAddress, () => server!.ApiEndpointAddress));
        services.AddSingleton<Trellis.Api.Aws.Iot.IIotOperations, Trellis.Api.Aws.Iot.IotOperations>();
        services.AddSingleton(new Trellis.Api.Aws.IotData.IotDataLimits(brokerOptions.MaxPacketBytes));
        services.AddSingleton<Trellis.Api.Aws.IotData.IIotDataOperations, Trellis.Api.Aws.IotData.IotDataOperations>();
        services.AddSingleton(new AuditLog(database));
        services.AddSingleton(_ => Trellis.Security.SecretBox.LoadOrCreate(data.SecretsKeyPath));
        services.AddSingleton(sp => new ApiUsers(database, accessKeys, time, sp.GetRequiredService<Trellis.Security.SecretBox>()));
        services.AddSingleton(new Trellis.Api.Console.ConsoleSessions(time));
        services.AddSingleton(new Trellis.Api.Console.DeviceBundleSource(data.CaCertificatePath));
        services.AddSingleton(sp => new SigV4Verifier(sp.GetRequiredService<ApiUsers>().SecretFor, time));
        services.AddSingleton(Microsoft.Extensions.Options.Options.Create(brokerOptions));
        services.AddSingleton(sp => new BrokerStore(database, new SqliteDatabase(data.SessionsPath, BrokerStore.SessionMigrations), sp.GetRequiredService<ILogger<BrokerStore>>()));
        services.AddSingleton<IBrokerAuthenticator, RegistryAuthenticator>();
        services.AddSingleton<MqttBroker>();
        services.AddHostedService(sp => sp.GetRequiredService<MqttBroker>());
        services.AddSingleton<MqttConnectionHandler>();
        services.AddSingleton(_ => new ShadowStore(new SqliteDatabase(data.ShadowsPath, ShadowStore.Migrations)));
        services.AddSingleton(options.Shadows);
        services.AddSingleton<IShadowPublisher, BrokerShadowPublisher>();
        services.AddSingleton(sp => new ShadowService(
            sp.GetRequiredService<ShadowStore>(),
            sp.GetRequiredService<ShadowOptions>(),
            sp.GetRequiredService<IShadowPublisher>(),
            sp.GetRequiredService<RegistryService>().ThingExists,
            time,
            sp.GetRequiredService<ILogger<ShadowService>>()));
        services.AddSingleton<IMessagePublisher, BrokerMessagePublisher>();
        services.AddSingleton<Trellis.Jobs.IJobStore>(_ => new Trellis.Jobs.SqliteJobStore(new SqliteDatabase(data.JobsPath, Trellis.Jobs.SqliteJobStore.Migrations)));
        services.AddSingleton<Trellis.Jobs.IJobTargets, RegistryJobTargets>();
        services.AddSingleton<Trellis.Jobs.IJobPublisher, BrokerJobPublisher>();
        services.AddSingleton<Trellis.Jobs.Firmware.IFirmwareStore>(_ => new Trellis.Jobs.Firmware.FileFirmwareStore(
            new SqliteDatabase(data.JobsPath, Trellis.Jobs.SqliteJobStore.Migrations), data.FirmwareDirectory, time));
        services.AddSingleton(sp => new Trellis.Jobs.Firmware.PresignedUrls(
            LoadOrCreateKey(data.PresignKeyPath), () => server!.DownloadEndpointAddress, sp.GetRequiredService<Trellis.Jobs.Firmware.IFirmwareStore>(), time));
        services.AddSingleton<Trellis.Jobs.IJobDocumentLinks>(sp => sp.GetRequiredService<Trellis.Jobs.Firmware.PresignedUrls>());
        services.AddSingleton(_ => Trellis.Jobs.Firmware.CodeSigner.LoadOrCreate(data.Root, time));
        services.AddSingleton<MessageRates>();
        services.AddTrellisMetrics();
        services.AddSingleton(sp => new ThingConnectivity(database, sp.GetRequiredService<RegistryService>().ThingExists, time, sp.GetRequiredService<ILogger<ThingConnectivity>>()));
        services.AddSingleton(sp => new Trellis.Fleet.FleetIndex(
            sp.GetRequiredService<RegistryService>(), sp.GetRequiredService<ShadowService>(), sp.GetRequiredService<ShadowStore>(), sp.GetRequiredService<ThingConnectivity>(),
            data.IndexDirectory, sp.GetRequiredService<ILogger<Trellis.Fleet.FleetIndex>>(), sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>()));
        services.AddSingleton<Trellis.Fleet.DynamicGroups>();
        services.AddSingleton(sp =>
        {
            var telemetry = sp.GetRequiredService<Trellis.Telemetry.TelemetryStore>();
            return new Trellis.Fleet.FleetMetrics(
                database, sp.GetRequiredService<Trellis.Fleet.FleetIndex>(),
                (at, series, measure, value) => telemetry.WriteAsync(new Trellis.Telemetry.TelemetryPoint(at, series, measure, value)),
                time, sp.GetRequiredService<ILogger<Trellis.Fleet.FleetMetrics>>(), registryOptions.Arn);
        });
        services.AddSingleton(sp => new Trellis.Fleet.Defender.Defender(
            database, sp.GetRequiredService<RegistryService>(), time, sp.GetRequiredService<ILogger<Trellis.Fleet.Defender.Defender>>(), registryOptions.Arn));
        services.AddSingleton(sp => new Trellis.Jobs.Firmware.FileStreams(
            sp.GetRequiredService<Trellis.Jobs.Firmware.IFirmwareStore>(), sp.GetRequiredService<Trellis.Jobs.IJobTargets>(), sp.GetRequiredService<Trellis.Jobs.IJobPublisher>(), time));
        services.AddSingleton<Trellis.Jobs.JobService>();
        services.AddHostedService<JobsWorker>();
        services.AddSingleton<Trellis.Api.Aws.IotJobsData.IIotJobsDataOperations, Trellis.Api.Aws.IotJobsData.IotJobsDataOperations>();
        // TRELLIS_Provisioning__<Setting> variables over what the embedding host set.
        Settings("Provisioning", options.Provisioning, static (c, s) => c.Bind(s), null);
        services.AddSingleton(options.Provisioning);
        services.AddSingleton(sp => new CertificateRateLimit(options.Provisioning));
        services.AddSingleton<Trellis.Api.Aws.IKeyPairLimit>(sp => sp.GetRequiredService<CertificateRateLimit>());
        services.AddHttpContextAccessor();
        services.AddSingleton(sp => new FleetProvisioningService(
            sp.GetRequiredService<RegistryService>(),
            new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) }),
            options.Provisioning,
            sp.GetRequiredService<ILogger<FleetProvisioningService>>()));
        services.AddHostedService<ClaimSweeper>();
        services.AddSingleton(sp => new Trellis.Telemetry.TelemetryStore(data.TelemetryPath, sp.GetRequiredService<ILogger<Trellis.Telemetry.TelemetryStore>>(), memoryLimitMiB: Math.Max(16, options.TelemetryMemoryMiB), queryOptions: telemetryQuery));
        services.AddHostedService<TelemetryWriter>();
        services.AddHostedService<TelemetryMaintenance>();
        services.AddSingleton(options.Outbox);
        services.AddSingleton(sp => new Outbox(new SqliteDatabase(data.OutboxPath, Outbox.Migrations), options.Outbox, time));
        services.AddHostedService<OutboxWorker>();
        var smtp = Settings("Smtp", new Trellis.Rules.Notifications.SmtpOptions(), static (c, s) => c.Bind(s), options.ConfigureSmtp);
        services.AddSingleton(smtp);
        services.AddSingleton(sp => new Trellis.Rules.Notifications.Notifier(
            database, sp.GetRequiredService<Outbox>(), (topic, payload) => sp.GetRequiredService<MqttBroker>().PublishFromServer(topic, payload, qos: 1, origin: "notifications"),
            smtp.IsConfigured, time, sp.GetRequiredService<ILogger<Trellis.Rules.Notifications.Notifier>>()));
        services.AddSingleton(sp => new Trellis.Rules.Alarms.AlarmEngine(database, time, sp.GetRequiredService<ILogger<Trellis.Rules.Alarms.AlarmEngine>>(), registryOptions.AccountId));
        services.AddSingleton(sp => new TopicRuleDestinations(
            database,
            new HttpClient { Timeout = TimeSpan.FromSeconds(10) },
            time,
            sp.GetRequiredService<ILogger<TopicRuleDestinations>>(),
            registryOptions.Arn));
        services.AddSingleton(sp => new RuleEngine(
            database,
            new RuleTargets(
                new BrokerRulePublisher(sp.GetRequiredService<MqttBroker>),
                new StoreSink(sp.GetRequiredService<Trellis.Telemetry.TelemetryStore>()),
                sp.GetRequiredService<Outbox>(),
                sp.GetRequiredService<TopicRuleDestinations>()),
            time,
            sp.GetRequiredService<ILogger<RuleEngine>>(),
            registryOptions.Arn,
            registryOptions.AccountId,
            options.RulesQueueCapacity));
        services.AddHostedService<RulesWorker>();
        if (mqtt is not null)
        {
            // Plain TCP runs on the broker's own socket listener; TLS and WebSockets on Kestrel.
            services.AddSingleton(sp => new MqttSocketListener(sp.GetRequiredService<MqttBroker>(), mqtt, flag: "--mqtt"));
            services.AddHostedService(sp => sp.GetRequiredService<MqttSocketListener>());
        }

        // TLS runs on the broker's loops too, with OpenSSL driven directly (one context, a session
        // cache, no stream per connection); Kestrel's TLS stays for platforms without them.
        var ownTls = mqtts is not null && brokerOptions.EventLoops > 0 && TlsServerContext.IsSupported;
        if (ownTls)
        {
            services.AddSingleton(sp =>
            {
                var registry = sp.GetRequiredService<RegistryService>();
                return new TlsServerContext(serverCertificate, ca.Certificate, registry.AcceptsClientCertificate);
            });
            services.AddKeyedSingleton("mqtts", (sp, _) => new MqttSocketListener(sp.GetRequiredService<MqttBroker>(), mqtts!, sp.GetRequiredService<TlsServerContext>(), "--mqtts"));
            // Not AddHostedService: it keeps one hosted service per type, and the plain listener is one.
            services.AddSingleton<IHostedService>(sp => sp.GetRequiredKeyedService<MqttSocketListener>("mqtts"));
        }
        if (coap is not null || coaps is not null)
        {
            services.AddSingleton(sp => new CoapObservations(time));
            services.AddHostedService<CoapObservationsWorker>();
            services.AddSingleton<CoapResources>();
            services.AddSingleton(sp => new CoapPresence(sp.GetRequiredService<MqttBroker>(), sp.GetRequiredService<CoapObservations>(), TimeSpan.FromSeconds(options.CoapIdleSeconds)));
            services.AddHostedService<CoapPresenceWorker>();
            services.AddSingleton(sp => new CoapWorker(coap, coaps is null ? null : (coaps, CoapWiring.DtlsOptions(sp.GetRequiredService<RegistryService>(), serverCertificate, ca.Certificate)),
                sp.GetRequiredService<CoapResources>(), sp.GetRequiredService<CoapObservations>(), sp.GetRequiredService<CoapPresence>(), sp.GetRequiredService<ILogger<Trellis.Coap.CoapEndpoint>>()));
            services.AddHostedService(sp => sp.GetRequiredService<CoapWorker>());
        }

        services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(10));

        var listeners = new Dictionary<string, ListenOptions>();
        RegistryService? registryForTls = null;
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;

            // Kestrel answers what it refuses itself with an empty body; its own limits sit above
            // ours so that the API's checks answer first, with AWS-style errors (see ApiErrorsMiddleware).
            kestrel.Limits.MaxRequestBodySize = 2L * Math.Max(apiLimits.MaxBodyBytes, apiLimits.MaxPublishBodyBytes);
            kestrel.Limits.MaxRequestLineSize = Math.Max(kestrel.Limits.MaxRequestLineSize, apiLimits.MaxUriBytes * 4);
            if (mqtts is not null && !ownTls)
            {
                kestrel.Listen(mqtts, l =>
                {
                    listeners["mqtts"] = l;
                    l.UseHttps(https =>
                    {
                        https.ServerCertificate = serverCertificate;
                        https.ClientCertificateMode = ClientCertificateMode.RequireCertificate;
                        https.CheckCertificateRevocation = false;
                        // Chains are built against Trellis's CA only, never the system trust store (sorting and
                        // comparing its hundreds of roots cost more than the rest of the handshake). A certificate
                        // that does not chain to it may still come from a registered CA (JITP, auto-registration)
                        // or be registered without a CA: the registry decides those.
                        https.ClientCertificateValidation = (certificate, _, errors) =>
                            errors == System.Net.Security.SslPolicyErrors.None || registryForTls!.AcceptsClientCertificate(certificate);
                        https.OnAuthenticate = (_, ssl) =>
                        {
                            // No ALPN list: AWS SDKs offer "x-amzn-mqtt-ca" and must not fail the handshake over it.
                            ssl.ApplicationProtocols = null;
                            var policy = new System.Security.Cryptography.X509Certificates.X509ChainPolicy
                            {
                                TrustMode = System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust,
                                RevocationMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
                                DisableCertificateDownloads = true,
                            };
                            policy.CustomTrustStore.Add(ca.Certificate);
                            ssl.CertificateChainPolicy = policy;
                        };
                    });
                    l.UseConnectionHandler<MqttConnectionHandler>();
                });
            }

            if (ws is not null)
            {
                kestrel.Listen(ws, l =>
                {
                    listeners["ws"] = l;
                    l.UseAwsErrorBodies(); // Kestrel's own refusals of a malformed upgrade request
                });
            }

            if (http is not null)
            {
                kestrel.Listen(http, l =>
                {
                    listeners["http"] = l;
                    l.UseAwsErrorBodies();
                });
            }

            if (https is not null)
            {
                // The API over TLS with the server certificate (signed by the data folder's CA): what
                // devices download firmware from when it is on, and operators may point clients at.
                kestrel.Listen(https, l =>
                {
                    listeners["https"] = l;
                    l.UseHttps(serverCertificate);
                    l.UseAwsErrorBodies();
                });
            }
        });

        var app = builder.Build();
        var registry = app.Services.GetRequiredService<RegistryService>();
        registryForTls = registry;
        _ = app.Services.GetRequiredService<ApiUsers>(); // checks the sealed secrets open before anything is served
        var broker = app.Services.GetRequiredService<MqttBroker>();
        app.Lifetime.ApplicationStopping.Register(broker.DisconnectAll);
        var shadows = app.Services.GetRequiredService<ShadowService>();
        broker.AddTopicHandler(new ShadowTopicHandler(shadows));
        var alarms = app.Services.GetRequiredService<Trellis.Rules.Alarms.AlarmEngine>();
        broker.SetPublishObserver(new RulesObserver(app.Services.GetRequiredService<RuleEngine>(), alarms, app.Services.GetService<CoapObservations>()));
        broker.AddTopicHandler(new FleetProvisioningTopicHandler(app.Services.GetRequiredService<FleetProvisioningService>(), broker, app.Services.GetRequiredService<CertificateRateLimit>()));
        registry.CertificateAutoRegistered += (certificate, caId) => CertificateEvents.PublishRegistered(broker, registryOptions, certificate, caId);
        registry.ThingDeleted += shadows.ForgetThing;
        var connectivity = app.Services.GetRequiredService<ThingConnectivity>();
        _ = app.Services.GetRequiredService<MessageRates>(); // sampling from start, so the first summary has a rate
        var gatewayLeaves = new GatewayLeaves(registry, connectivity, broker, app.Services.GetRequiredService<ILogger<GatewayLeaves>>());
        broker.AddTopicHandler(gatewayLeaves);
        broker.SetConnectivityObserver(new ConnectivityObserver(connectivity, gatewayLeaves));
        registry.ThingDeleted += connectivity.Forget;
        _ = app.Services.GetRequiredService<Trellis.Fleet.DynamicGroups>(); // the fleet index follows the stores from start (and builds itself when on)
        _ = app.Services.GetRequiredService<Trellis.Fleet.FleetMetrics>(); // and the fleet metrics are computed from start
        var defender = app.Services.GetRequiredService<Trellis.Fleet.Defender.Defender>();
        if (options.DeviceDefender)
        {
            broker.SetDeviceActivity(defender.Activity);
        }

        broker.AddTopicHandler(new DefenderTopicHandler(defender, broker));
        Notifications.Wire(app.Services.GetRequiredService<Trellis.Rules.Notifications.Notifier>(), defender, alarms, connectivity);
        var jobs = app.Services.GetRequiredService<Trellis.Jobs.JobService>();
        broker.AddTopicHandler(new JobTopicHandler(jobs));
        broker.AddTopicHandler(new StreamTopicHandler(app.Services.GetRequiredService<Trellis.Jobs.Firmware.FileStreams>()));
        registry.ThingDeleted += jobs.ThingLeftGroup;
        registry.ThingGroupMembershipChanged += (thing, joined) =>
        {
            if (joined)
            {
                jobs.ThingJoinedGroup(thing);
            }
            else
            {
                jobs.ThingLeftGroup(thing);
            }
        };
        app.Services.GetRequiredService<ApiUsers>().KeyRevoked += id =>
        {
            broker.DisconnectWhere(p => p.IsOperator && p.PrincipalIdentifier == id, $"API key {id} was deleted or rotated");
            app.Services.GetRequiredService<Trellis.Api.Console.ConsoleSessions>().RemoveKey(id);
        };
        registry.DeviceTokenDisabled += id => broker.DisconnectWhere(p => p.TokenId == id, $"device token {id} was revoked or expired");
        registry.CertificateStatusChanged += (id, status) =>
        {
            if (status != CertificateStatus.Active)
            {
                broker.DisconnectWhere(p => p.CertificateId == id, $"certificate {id} is now {status}");
            }
        };

        app.UseWebSockets();
        app.Use(async (context, next) =>
        {
            // The WebSocket listener serves only /mqtt; the API listener serves everything.
            if (listeners.TryGetValue("ws", out var wsListener) && context.Connection.LocalPort == wsListener.IPEndPoint!.Port
                && !context.Request.Path.StartsWithSegments("/mqtt", StringComparison.Ordinal))
            {
                await MqttWebSocketEndpoint.MessageAsync(context, StatusCodes.Status404NotFound, "UnknownOperationException", "This port serves MQTT over WebSockets at /mqtt only; the management API is on the --http port.");
                return;
            }

            await next(context);
        });
        app.UseMiddleware<Trellis.Api.Console.ConsoleMiddleware>();
        app.UseMiddleware<SigV4Middleware>();
        app.UseMiddleware<AuditMiddleware>();
        app.UseMiddleware<RoleMiddleware>();
        app.MapGet("/health", () => Results.Text("{\"status\":\"ok\"}", "application/json"));
        app.MapOperations(() => server!.BoundListeners());
        app.MapTrellisMetrics();
        app.MapMqttWebSocket();
        app.MapDeviceTokensApi();
        app.MapAuditApi();
        app.MapUsersApi();
        app.MapTelemetryApi();
        app.MapFirmwareApi();
        app.MapAlarmsApi();
        app.MapOutboxApi();
        app.MapRuleTestApi();
        Trellis.Api.Console.DeviceBundles.MapDeviceBundles(app);

        // Last: the model's routes, implemented ones through their handlers, the rest answering 501.
        app.MapAwsModel();
        // A RequestDelegate, not a lambda the request delegate generator rewrites: its rewrite loses
        // the fallback's last place in the route order, and the 501 routes above must come first.
        app.MapFallback(context =>
            AwsResults.Error("UnknownOperationException", StatusCodes.Status404NotFound, $"No operation at {context.Request.Method} {context.Request.Path}.").ExecuteAsync(context));

        await app.StartAsync(cancellationToken);
        server = new TrellisServer(app, listeners, data, hostnames);
        if (options.AllowAnonymous)
        {
            app.Services.GetRequiredService<ILogger<TrellisServer>>().AnonymousAllowed();
        }

        return server;
    }

    /// <summary>DescribeEndpoint's answer: the host devices dial, with the port when it is not 8883.</summary>
    public string TlsEndpointAddress
    {
        get
        {
            var port = Port("mqtts");
            return port == 8883 ? PublicHost : $"{PublicHost}:{port}";
        }
    }

    /// <summary>The listeners that are on, with the ports they are bound to (a listener that cannot bind stops start-up).</summary>
    internal IReadOnlyDictionary<string, int> BoundListeners() =>
        ListenerNames.Where(name => Port(name) > 0).ToDictionary(name => name, Port, StringComparer.Ordinal);

    private static readonly string[] ListenerNames = ["mqtt", "mqtts", "ws", "coap", "coaps", "http", "https"];

    /// <summary>Where devices download firmware: the HTTPS listener when it is on, else the API's.</summary>
    public string DownloadEndpointAddress => Port("https") > 0
        ? $"https://{PublicHost}:{Port("https").ToString(System.Globalization.CultureInfo.InvariantCulture)}"
        : HttpEndpointAddress;

    /// <summary>The management API's base URL as devices reach it (the HTTPS one when plain HTTP is off).</summary>
    public string HttpEndpointAddress => Port("http") > 0
        ? $"http://{PublicHost}:{Port("http").ToString(System.Globalization.CultureInfo.InvariantCulture)}"
        : $"https://{PublicHost}:{Port("https").ToString(System.Globalization.CultureInfo.InvariantCulture)}";

    /// <summary>DescribeEndpoint's iot:Jobs answer: <c>host:port</c> of the HTTPS listener (SDKs add https://), else the plain HTTP URL.</summary>
    public string ApiEndpointAddress => Port("https") > 0
        ? $"{PublicHost}:{Port("https").ToString(System.Globalization.CultureInfo.InvariantCulture)}"
        : HttpEndpointAddress;

    /// <summary>The host name devices dial: the first --hostname given (after the three always in the certificate), else localhost.</summary>
    private string PublicHost => Hostnames.Count > 3 ? Hostnames[3] : "localhost";

    /// <summary>32 random bytes kept in <paramref name="path"/>, made on first start.</summary>
    private static byte[] LoadOrCreateKey(string path)
    {
        if (File.Exists(path))
        {
            var key = File.ReadAllBytes(path);
            if (key.Length == 32)
            {
                return key;
            }

            throw new InvalidOperationException($"{path} should hold 32 bytes, not {key.Length}: restore it from a backup, or delete it to make a new one (download links already handed out then stop working).");
        }

        // Private like every file of the data folder: the server's file-creation mask is 077.
        var fresh = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
        {
            file.Write(fresh);
            file.Flush(flushToDisk: true);
        }

        return fresh;
    }

    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    public async Task StopAsync(CancellationToken cancellationToken = default) => await _app.StopAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync();
    }
}
