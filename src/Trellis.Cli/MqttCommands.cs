using System.CommandLine;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using MQTTnet;
using MQTTnet.Adapter;
using MQTTnet.Exceptions;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using Trellis.Device;

namespace Trellis.Cli;

/// <summary>
/// <c>trellis pub</c> and <c>trellis sub</c>: MQTT test clients, as <c>mosquitto_pub</c>/<c>mosquitto_sub</c>
/// and the AWS console's test client. They connect as a device (<c>--device DIR</c>, a folder from
/// <c>trellis provision</c>: its certificate over TLS, client id = the thing's name) or with an API
/// key (the credentials the management commands use: user name = access key id, password = secret,
/// acting under the key's role). Exit codes: 0 done, 1 refused by the broker (CONNACK, SUBACK or
/// PUBACK reason said), 2 usage, 3 the broker cannot be reached, 4 <c>sub --timeout</c> ran out.
/// </summary>
internal static class MqttCommands
{
    private static readonly Option<string?> Device = new("--device") { Description = "Connect as this device: a folder from `trellis provision` (certificate, key, ca.pem, device.json); TLS, client id = the thing's name" };
    private static readonly Option<string?> Mqtt = new("--mqtt") { Description = "Broker as HOST:PORT (default: the device folder's endpoint, else 127.0.0.1:1883)" };
    private static readonly Option<string?> ClientId = new("--client-id", "-i") { Description = "MQTT client id (default: the thing's name with --device, else trellis-cli-RANDOM)" };
    private static readonly Option<int> Qos = new("--qos", "-q") { Description = "QoS 0, 1 or 2 (default 1)", DefaultValueFactory = _ => 1 };
    private static readonly Option<string> Version = new("--mqtt-version", "-V") { Description = "5 (default) or 3.1.1", DefaultValueFactory = _ => "5" };

    public static IEnumerable<Command> Create()
    {
        Qos.AcceptOnlyFromAmong("0", "1", "2");
        Version.AcceptOnlyFromAmong("5", "3.1.1");
        yield return Pub();
        yield return Sub();
    }

    private static Command Pub()
    {
        var topic = new Option<string>("--topic", "-t") { Description = "Topic to publish to", Required = true };
        var message = new Option<string?>("--message", "-m") { Description = "The payload as text" };
        var file = new Option<string?>("--file", "-f") { Description = "The payload from a file (binary as is)" };
        var lines = new Option<bool>("--stdin-lines", "-l") { Description = "Every line of standard input is a message" };
        var retain = new Option<bool>("--retain", "-r") { Description = "Retain the message (an empty payload clears the topic's retained message)" };
        var repeat = new Option<int>("--repeat") { Description = "Send the message this many times (default 1)", DefaultValueFactory = _ => 1 };
        var pub = new Command("pub", "Publish MQTT messages as a device (--device DIR) or with an API key, and report what the broker said.")
        {
            topic, message, file, lines, retain, repeat, Device, Mqtt, ClientId, Qos, Version,
        };
        pub.SetAction(async (r, ct) =>
        {
            var sources = (r.GetValue(message) is not null ? 1 : 0) + (r.GetValue(file) is not null ? 1 : 0) + (r.GetValue(lines) ? 1 : 0);
            if (sources != 1)
            {
                return Usage("give exactly one of --message TEXT, --file FILE or --stdin-lines");
            }

            if (r.GetValue(repeat) < 1)
            {
                return Usage("--repeat must be 1 or more");
            }

            if (r.GetValue(file) is { } path && !File.Exists(path))
            {
                return Usage($"--file {path}: no such file");
            }

            return await WithClientAsync(r, async (client, ct2) =>
            {
                var qos = (MqttQualityOfServiceLevel)r.GetValue(Qos);
                IEnumerable<byte[]> payloads = r.GetValue(lines)
                    ? ReadLines()
                    : Enumerable.Repeat(r.GetValue(file) is { } f ? await File.ReadAllBytesAsync(f, ct2) : Encoding.UTF8.GetBytes(r.GetValue(message)!), r.GetValue(repeat));
                var sent = 0;
                foreach (var payload in payloads)
                {
                    var result = await client.PublishAsync(new MqttApplicationMessageBuilder()
                        .WithTopic(r.GetValue(topic)).WithPayload(payload).WithQualityOfServiceLevel(qos).WithRetainFlag(r.GetValue(retain)).Build(), ct2);
                    if ((int)result.ReasonCode >= 0x80)
                    {
                        await Console.Error.WriteLineAsync($"trellis: publish {sent + 1} to '{r.GetValue(topic)}' refused: {result.ReasonCode} (0x{(int)result.ReasonCode:x2}){(result.ReasonString is { } why ? ": " + why : string.Empty)}. {Hint(result.ReasonCode)}");
                        return 1;
                    }

                    sent++;
                }

                await Console.Error.WriteLineAsync(qos == MqttQualityOfServiceLevel.AtMostOnce
                    ? $"trellis: {sent} message(s) sent at QoS 0 (the broker does not acknowledge QoS 0: a refusal is not reported)"
                    : $"trellis: {sent} message(s) acknowledged");
                return 0;
            }, ct);
        });
        return pub;
    }

    private static Command Sub()
    {
        var topics = new Option<string[]>("--topic", "-t") { Description = "Topic filter (repeatable; + and # wildcards)", Required = true, AllowMultipleArgumentsPerToken = false };
        var count = new Option<int?>("--count", "-C") { Description = "Exit after this many messages" };
        var timeout = new Option<int?>("--timeout", "-W") { Description = "Give up after this many seconds (exit 4)" };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Print each message's topic before its payload" };
        var sub = new Command("sub", "Subscribe and print the messages that arrive (payload per line; -v adds the topic; --output json: one JSON object per message).")
        {
            topics, count, timeout, verbose, Device, Mqtt, ClientId, Qos, Version,
        };
        sub.SetAction(async (r, ct) =>
        {
            if (r.GetValue(count) is < 1 || r.GetValue(timeout) is < 1)
            {
                return Usage("--count and --timeout must be 1 or more");
            }

            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
            if (r.GetValue(timeout) is { } seconds)
            {
                deadline.CancelAfter(TimeSpan.FromSeconds(seconds));
            }

            var json = r.GetValue(ManageCommands.OutputOption) == "json";
            var received = 0;
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var gate = new Lock();
            try
            {
                return await WithClientAsync(r, async (client, ct2) =>
                {
                    client.ApplicationMessageReceivedAsync += e =>
                    {
                        lock (gate)
                        {
                            if (r.GetValue(count) is { } most && received >= most)
                            {
                                return Task.CompletedTask;
                            }

                            var m = e.ApplicationMessage;
                            var text = Encoding.UTF8.GetString(m.Payload);
                            if (json)
                            {
                                Console.WriteLine(new JsonObject { ["topic"] = m.Topic, ["payload"] = text, ["qos"] = (int)m.QualityOfServiceLevel, ["retain"] = m.Retain }.ToJsonString());
                            }
                            else
                            {
                                Console.WriteLine(r.GetValue(verbose) ? m.Topic + " " + text : text);
                            }

                            received++;
                            if (r.GetValue(count) is { } limit && received >= limit)
                            {
                                done.TrySetResult();
                            }
                        }

                        return Task.CompletedTask;
                    };
                    client.DisconnectedAsync += e =>
                    {
                        done.TrySetException(new MqttCommunicationException($"the broker closed the connection ({e.ReasonString ?? e.Reason.ToString()})"));
                        return Task.CompletedTask;
                    };

                    var subscribe = new MqttClientSubscribeOptionsBuilder();
                    foreach (var filter in r.GetValue(topics)!)
                    {
                        subscribe.WithTopicFilter(filter, (MqttQualityOfServiceLevel)r.GetValue(Qos));
                    }

                    var granted = await client.SubscribeAsync(subscribe.Build(), ct2);
                    var refused = granted.Items.Where(i => (int)i.ResultCode >= 0x80).ToList();
                    foreach (var item in refused)
                    {
                        await Console.Error.WriteLineAsync($"trellis: subscription to '{item.TopicFilter.Topic}' refused: {item.ResultCode} (0x{(int)item.ResultCode:x2}). The identity's policy must allow iot:Subscribe on topicfilter/{item.TopicFilter.Topic}.");
                    }

                    if (refused.Count == granted.Items.Count)
                    {
                        return 1;
                    }

                    await Console.Error.WriteLineAsync($"trellis: subscribed to {string.Join(", ", granted.Items.Where(i => (int)i.ResultCode < 0x80).Select(i => $"'{i.TopicFilter.Topic}' (QoS {(int)i.ResultCode})"))}");
                    await done.Task.WaitAsync(ct2);
                    return 0;
                }, deadline.Token);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                await Console.Error.WriteLineAsync($"trellis: --timeout {r.GetValue(timeout)} s ran out after {received} message(s)");
                return 4;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return 0; // Ctrl-C: the messages so far were printed
            }
        });
        return sub;
    }

    /// <summary>Connects as the options say, runs <paramref name="work"/>, disconnects; maps failures to exit codes with what to do.</summary>
    private static async Task<int> WithClientAsync(ParseResult r, Func<IMqttClient, CancellationToken, Task<int>> work, CancellationToken ct)
    {
        var options = new MqttClientOptionsBuilder()
            .WithProtocolVersion(r.GetValue(Version) == "5" ? MqttProtocolVersion.V500 : MqttProtocolVersion.V311)
            .WithCleanSession(true)
            .WithTimeout(TimeSpan.FromSeconds(10));
        string where;
        if (r.GetValue(Device) is { } folder)
        {
            DeviceOptions device;
            try
            {
                device = DeviceOptions.FromFolder(folder);
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or System.Security.Cryptography.CryptographicException or System.Text.Json.JsonException)
            {
                return Usage($"--device {folder}: {e.Message}");
            }

            var (host, port) = HostPort(r.GetValue(Mqtt), device.Host, device.Port);
            where = $"{host}:{port}";
            options.WithTcpServer(host, port)
                .WithClientId(r.GetValue(ClientId) ?? device.ThingName)
                .WithTlsOptions(tls => tls.UseTls().WithTargetHost(host).WithClientCertificates([device.Certificate])
                    .WithCertificateValidationHandler(e => TrellisDevice.ValidateServer(e.Certificate, e.SslPolicyErrors, device.CaCertificate)));
        }
        else
        {
            if (CliCredentials.Resolve(r.GetValue(ManageCommands.DataOption)!, r.GetValue(ManageCommands.ProfileOption), out var tried) is not { } key)
            {
                await Console.Error.WriteLineAsync($"trellis: no credentials found ({tried}). Give --device DIR to connect as a device, point --data at the server's data folder, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.");
                return 3;
            }

            // An API key is a user name and password: the plain MQTT listener (8883 wants a device certificate).
            var (host, port) = HostPort(r.GetValue(Mqtt), "127.0.0.1", 1883);
            where = $"{host}:{port}";
            options.WithTcpServer(host, port)
                .WithClientId(r.GetValue(ClientId) ?? "trellis-cli-" + Guid.NewGuid().ToString("N")[..8])
                .WithCredentials(key.AccessKeyId, key.Secret);
        }

        using var client = new MqttClientFactory().CreateMqttClient();
        try
        {
            var connected = await client.ConnectAsync(options.Build(), ct);
            if (connected.ResultCode != MqttClientConnectResultCode.Success)
            {
                await Console.Error.WriteLineAsync($"trellis: {where} refused the connection: {connected.ResultCode}{(connected.ReasonString is { } why ? ": " + why : string.Empty)}");
                return 1;
            }
        }
        catch (MqttConnectingFailedException e)
        {
            await Console.Error.WriteLineAsync($"trellis: {where} refused the connection: {e.Message} " +
                "The server's log says why (no policy attached, or the policy does not allow iot:Connect for this client id).");
            return 1;
        }
        catch (Exception e) when (e is MqttCommunicationException or SocketException or IOException or TimeoutException)
        {
            await Console.Error.WriteLineAsync($"trellis: cannot reach the broker at {where}: {Innermost(e).Message}. Is `trellis serve` running there (--mqtt HOST:PORT)?");
            return 3;
        }

        try
        {
            return await work(client, ct);
        }
        catch (MqttCommunicationException e) when (!ct.IsCancellationRequested)
        {
            await Console.Error.WriteLineAsync($"trellis: {e.Message}. The server's log says why (a refused publish at QoS 0 on MQTT 3.1.1 closes the connection).");
            return 1;
        }
        finally
        {
            if (client.IsConnected)
            {
                await client.DisconnectAsync(new MqttClientDisconnectOptions(), CancellationToken.None);
            }
        }
    }

    private static string Hint(MqttClientPublishReasonCode code) => code switch
    {
        MqttClientPublishReasonCode.NotAuthorized => "The identity's policy must allow iot:Publish on the topic (and iot:RetainPublish to retain).",
        MqttClientPublishReasonCode.PayloadFormatInvalid => "The payload is not what the topic expects (a shadow topic wants a JSON document).",
        _ => string.Empty,
    };

    private static (string Host, int Port) HostPort(string? value, string host, int port)
    {
        if (value is null)
        {
            return (host, port);
        }

        var colon = value.LastIndexOf(':');
        return colon > 0 && int.TryParse(value.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p is > 0 and < 65536
            ? (value[..colon].Trim('[', ']'), p)
            : (value.Trim('[', ']'), port);
    }

    private static IEnumerable<byte[]> ReadLines()
    {
        while (Console.In.ReadLine() is { } line)
        {
            yield return Encoding.UTF8.GetBytes(line);
        }
    }

    private static Exception Innermost(Exception e) => e.InnerException is { } inner ? Innermost(inner) : e;

    private static int Usage(string message)
    {
        Console.Error.WriteLine("trellis: " + message);
        return 2;
    }
}
