using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Trellis.Api;
using Trellis.Broker;
using Trellis.Registry;

namespace Trellis.Server;

/// <summary>
/// Probes and the fleet at a glance: <c>GET /healthz</c> (the process answers), <c>GET /readyz</c>
/// (storage opens and the listeners are bound; 503 naming what is not), both unsigned for
/// orchestrators, and <c>GET /api/fleet/summary</c> (SigV4, any role): things, online now, MQTT
/// connections, messages per second in and out, running jobs, storage used.
/// </summary>
internal static class OperationsEndpoints
{
    public static void MapOperations(this IEndpointRouteBuilder app, Func<IReadOnlyDictionary<string, int>> listeners)
    {
        app.MapGet("/healthz", () => AwsResults.Json(new JsonObject { ["status"] = "alive" }));
        app.MapGet("/readyz", (RegistryService registry, Trellis.Jobs.Firmware.IFirmwareStore jobsDb, Trellis.Telemetry.TelemetryStore telemetry) =>
        {
            var checks = new JsonObject();
            var ready = true;
            void Check(string name, Action probe)
            {
                try
                {
                    probe();
                    checks[name] = "ok";
                }
                catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or InvalidOperationException or IOException or ObjectDisposedException)
                {
                    checks[name] = e.Message;
                    ready = false;
                }
            }

            Check("registry", () => registry.CountThings());
            Check("jobs", () => jobsDb.List(null, 1));
            Check("telemetry", () => telemetry.EngineMemoryBytes());
            var bound = listeners();
            checks["listeners"] = new JsonObject(bound.Select(l => KeyValuePair.Create(l.Key, (JsonNode?)l.Value)));
            if (!bound.ContainsKey("http"))
            {
                ready = false;
            }

            return AwsResults.Json(new JsonObject { ["status"] = ready ? "ready" : "not ready", ["checks"] = checks }, ready ? 200 : 503);
        });
        app.MapGet("/api/fleet/summary", (RegistryService registry, ThingConnectivity connectivity, MessageRates rates, Trellis.Jobs.JobService jobs, Trellis.Storage.DataFolder data,
            Trellis.Rules.Alarms.AlarmEngine alarms, Trellis.Fleet.Defender.Defender defender) =>
        {
            var (inPerSecond, outPerSecond) = rates.Current;
            var open = alarms.OpenBySeverity();
            return AwsResults.Json(new JsonObject
            {
                ["things"] = registry.CountThings(),
                ["online"] = connectivity.OnlineCount,
                ["connections"] = rates.Connections,
                ["messagesInPerSecond"] = Math.Round(inPerSecond, 1),
                ["messagesOutPerSecond"] = Math.Round(outPerSecond, 1),
                ["activeAlarms"] = open.Values.Sum(),
                ["activeAlarmsBySeverity"] = new JsonObject(open.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))),
                ["activeViolations"] = defender.ActiveCount(),
                ["runningJobs"] = jobs.ListJobs("IN_PROGRESS", null, null, null, 250) is { IsSuccess: true } running ? running.Value.Jobs.Count : 0,
                ["storageBytes"] = Directory.EnumerateFiles(data.Root, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length),
            });
        }).WithName("GetFleetSummary");
    }
}

/// <summary>Messages per second in and out of the broker, from its counters sampled every second.</summary>
internal sealed class MessageRates : IDisposable
{
    private readonly MqttBroker _broker;
    private readonly Timer _timer;
    private (long In, long Out, long AtMs) _previous;
    private (double In, double Out) _current;

    public MessageRates(MqttBroker broker)
    {
        _broker = broker;
        _previous = (broker.Metrics.MessagesReceived, broker.Metrics.MessagesSent, Environment.TickCount64);
        _timer = new Timer(_ => Sample(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    public (double In, double Out) Current => _current;

    public long Connections => _broker.Metrics.Connections;

    public void Dispose() => _timer.Dispose();

    private void Sample()
    {
        var now = (In: _broker.Metrics.MessagesReceived, Out: _broker.Metrics.MessagesSent, AtMs: Environment.TickCount64);
        var seconds = Math.Max(0.001, (now.AtMs - _previous.AtMs) / 1000.0);
        _current = ((now.In - _previous.In) / seconds, (now.Out - _previous.Out) / seconds);
        _previous = now;
    }
}
