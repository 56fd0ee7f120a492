using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Trellis.Core.Errors;
using Trellis.Storage;

namespace Trellis.Rules.Notifications;

/// <summary>
/// Where notifications go: an MQTT topic, a webhook URL or email addresses, for the kinds of event it
/// wants (<c>violations</c>, <c>alarms</c>, <c>presence</c>). Alarms may be narrowed to a lowest severity.
/// </summary>
public sealed record NotificationTarget(
    string Name,
    string Type,
    string? Topic,
    string? Url,
    IReadOnlyList<string>? To,
    IReadOnlyList<string> Events,
    string? MinSeverity,
    long CreatedMs,
    long UpdatedMs);

/// <summary>One event to tell: its kind, a one-line subject, the thing and severity it is about, and the details.</summary>
public sealed record Notification(string Kind, string Subject, string? Thing, string? Severity, JsonObject Details);

/// <summary>
/// Sends notifications without ever making the broker wait: events are queued in memory (bounded)
/// and a worker fans each out to the targets that want it. MQTT targets are published at once
/// (QoS 1); webhooks and email go through the durable outbox (<c>notify-http</c>, <c>smtp</c>), which
/// retries a failing target with back-off and keeps order, and survives a restart.
/// </summary>
public sealed partial class Notifier : IAsyncDisposable
{
    public const string HttpTarget = "notify-http";
    public const string SmtpTarget = "smtp";
    public static readonly IReadOnlyList<string> Kinds = ["violations", "alarms", "presence"];
    public static readonly IReadOnlyList<string> Types = ["mqtt", "webhook", "email"];
    private const int QueueCapacity = 100_000;

    private readonly SqliteDatabase _db;
    private readonly Outbox _outbox;
    private readonly Action<string, byte[]> _publish;
    private readonly bool _smtpConfigured;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly QueueWorker<Notification> _queue;
    private NotificationTarget[] _targets = [];
    private long _sent;

    /// <summary>Targets from <c>notification_targets</c>; <paramref name="publish"/> sends an MQTT message from the server (must not block); email targets are refused unless <paramref name="smtpConfigured"/>.</summary>
    public Notifier(SqliteDatabase db, Outbox outbox, Action<string, byte[]> publish, bool smtpConfigured, TimeProvider time, ILogger<Notifier> logger)
    {
        _db = db;
        _outbox = outbox;
        _publish = publish;
        _smtpConfigured = smtpConfigured;
        _time = time;
        _logger = logger;
        using (var connection = _db.Open())
        {
            Load(connection);
        }

        _queue = new QueueWorker<Notification>(QueueCapacity, BoundedChannelFullMode.DropOldest, FanOut);
    }

    /// <summary>Notifications handed to a target (published, or queued in the outbox).</summary>
    public long Sent => Interlocked.Read(ref _sent);

    /// <summary>Cheap: does any target want this kind? (Presence events are not even built otherwise.)</summary>
    public bool Wants(string kind) => Volatile.Read(ref _targets).Any(t => t.Events.Contains(kind, StringComparer.Ordinal));

    /// <summary>Queues a notification; never blocks (past the bound, the oldest waiting one is dropped).</summary>
    public void Notify(Notification notification)
    {
        if (Wants(notification.Kind))
        {
            _queue.TryWrite(notification);
        }
    }

    [GeneratedRegex("^[a-zA-Z0-9_-]{1,128}$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[^@\\s]+@[^@\\s]+$")]
    private static partial Regex AddressPattern();

    public Result<NotificationTarget> Put(NotificationTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (Check(target) is { } invalid)
        {
            return invalid;
        }

        using var connection = _db.Open();
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var created = Read(connection, target.Name)?.CreatedMs ?? now;
        var stored = target with { CreatedMs = created, UpdatedMs = now };
        using var upsert = SqliteCommands.Command(connection, """
            INSERT INTO notification_targets(name, definition, created_ms, updated_ms) VALUES ($n, $d, $c, $u)
            ON CONFLICT(name) DO UPDATE SET definition = excluded.definition, updated_ms = excluded.updated_ms
            """, ("$n", target.Name), ("$d", ToJson(stored).ToJsonString()), ("$c", created), ("$u", now));
        upsert.ExecuteNonQuery();
        Load(connection);
        return stored;
    }

    public Result<NotificationTarget> Describe(string name)
    {
        using var connection = _db.Open();
        return Read(connection, name) is { } target ? target : NotFound(name);
    }

    public IReadOnlyList<NotificationTarget> List() => Volatile.Read(ref _targets);

    public TrellisError? Delete(string name)
    {
        using var connection = _db.Open();
        using var delete = SqliteCommands.Command(connection, "DELETE FROM notification_targets WHERE name = $n", ("$n", name));
        if (delete.ExecuteNonQuery() == 0)
        {
            return NotFound(name);
        }

        Load(connection);
        return null;
    }

    /// <summary>Sends a test notification to one target now (through the same path as real ones).</summary>
    public TrellisError? Test(string name)
    {
        if (Volatile.Read(ref _targets).FirstOrDefault(t => t.Name == name) is not { } target)
        {
            return NotFound(name);
        }

        Send(target, new Notification("test", $"Test notification for target {name}", null, null, new JsonObject { ["message"] = "If you read this, the target works." }));
        return null;
    }

    /// <summary>A notification the outbox gave up on (older than its maximum age): logged.</summary>
    public Task ReportExpiredAsync(OutboxEntry entry, string reason)
    {
        Log.Expired(_logger, entry.Rule["notification:".Length..], entry.Address, reason);
        return Task.CompletedTask;
    }

    public ValueTask DisposeAsync() => _queue.DisposeAsync();

    private void FanOut(Notification notification)
    {
        foreach (var target in Volatile.Read(ref _targets))
        {
            if (Matches(target, notification))
            {
                Send(target, notification);
            }
        }
    }

    private static bool Matches(NotificationTarget target, Notification notification)
    {
        if (!target.Events.Contains(notification.Kind, StringComparer.Ordinal))
        {
            return false;
        }

        // Severities run from CRITICAL (0) down; a target with a lowest severity skips the ones below it.
        return target.MinSeverity is null || notification.Severity is null
            || Rank(notification.Severity) <= Rank(target.MinSeverity);
    }

    private static int Rank(string severity) => Alarms.AlarmEngine.Severities.ToList().IndexOf(severity) is var i and >= 0 ? i : int.MaxValue;

    private void Send(NotificationTarget target, Notification notification)
    {
        var document = new JsonObject
        {
            ["kind"] = notification.Kind,
            ["subject"] = notification.Subject,
            ["thingName"] = notification.Thing,
            ["severity"] = notification.Severity,
            ["target"] = target.Name,
            ["timestamp"] = _time.GetUtcNow().ToUnixTimeMilliseconds(),
            ["details"] = notification.Details.DeepClone(),
        };
        var payload = Encoding.UTF8.GetBytes(document.ToJsonString());
        var topic = $"$trellis/notifications/{notification.Kind}";
        try
        {
            TrellisError? error = target.Type switch
            {
                "mqtt" => Publish(target.Topic!, payload),
                "webhook" => _outbox.Enqueue(HttpTarget, "notification:" + target.Name, target.Url!, null, payload, topic, null),
                _ => _outbox.Enqueue(SmtpTarget, "notification:" + target.Name, string.Join(",", target.To!), null, payload, topic, null),
            };
            if (error is not null)
            {
                Log.Failed(_logger, target.Name, error.Message);
                return;
            }

            Interlocked.Increment(ref _sent);
        }
        catch (Exception e) when (e is SqliteException or InvalidOperationException or IOException)
        {
            Log.Failed(_logger, target.Name, e.Message);
        }
    }

    private TrellisError? Publish(string topic, byte[] payload)
    {
        _publish(topic, payload);
        return null;
    }

    private TrellisError? Check(NotificationTarget t)
    {
        if (!NamePattern().IsMatch(t.Name))
        {
            return new TrellisError.InvalidRequest($"Target name '{t.Name}' is invalid: use 1-128 characters from a-z A-Z 0-9 _ -.");
        }

        if (t.Events.Count == 0 || t.Events.FirstOrDefault(e => !Kinds.Contains(e, StringComparer.Ordinal)) is { } unknown)
        {
            return new TrellisError.InvalidRequest($"events lists what the target is told of, among {string.Join(", ", Kinds)}" + (t.Events.Count == 0 ? "." : $"; '{t.Events.First(e => !Kinds.Contains(e, StringComparer.Ordinal))}' is not one."));
        }

        if (t.MinSeverity is { } severity && !Alarms.AlarmEngine.Severities.Contains(severity, StringComparer.Ordinal))
        {
            return new TrellisError.InvalidRequest($"minSeverity '{severity}' is not one of {string.Join(", ", Alarms.AlarmEngine.Severities)}.");
        }

        switch (t.Type)
        {
            case "mqtt" when t.Topic is null || !Core.Topics.TopicValidator.IsValidTopicName(t.Topic):
                return new TrellisError.InvalidRequest($"An mqtt target needs a topic without wildcards, not '{t.Topic}'.");
            case "webhook" when !Uri.TryCreate(t.Url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"):
                return new TrellisError.InvalidRequest($"A webhook target needs an http or https URL, not '{t.Url}'.");
            case "email" when t.To is not { Count: > 0 } || t.To.Any(a => !AddressPattern().IsMatch(a)):
                return new TrellisError.InvalidRequest("An email target needs one or more addresses in to.");
            case "email" when !_smtpConfigured:
                return new TrellisError.InvalidRequest("Email needs an SMTP server: set TRELLIS_Smtp__Host (and Port, From, UserName, Password, Security) and restart (docs/configuration.md).");
            case "mqtt" or "webhook" or "email":
                return null;
            default:
                return new TrellisError.InvalidRequest($"Target type '{t.Type}' is not one of {string.Join(", ", Types)}.");
        }
    }

    private void Load(SqliteConnection connection)
    {
        using var command = SqliteCommands.Command(connection, "SELECT name, definition, created_ms, updated_ms FROM notification_targets ORDER BY name");
        using var reader = command.ExecuteReader();
        var targets = new List<NotificationTarget>();
        while (reader.Read())
        {
            targets.Add(FromRow(reader));
        }

        Volatile.Write(ref _targets, [.. targets]);
    }

    private static NotificationTarget? Read(SqliteConnection connection, string name)
    {
        using var command = SqliteCommands.Command(connection, "SELECT name, definition, created_ms, updated_ms FROM notification_targets WHERE name = $n", ("$n", name));
        using var reader = command.ExecuteReader();
        return reader.Read() ? FromRow(reader) : null;
    }

    private static NotificationTarget FromRow(SqliteDataReader reader)
    {
        var o = JsonNode.Parse(reader.GetString(1))!.AsObject();
        return new NotificationTarget(
            reader.GetString(0), o["type"]!.GetValue<string>(), o["topic"]?.GetValue<string>(), o["url"]?.GetValue<string>(),
            (o["to"] as JsonArray)?.Select(a => a!.GetValue<string>()).ToList(), [.. o["events"]!.AsArray().Select(e => e!.GetValue<string>())],
            o["minSeverity"]?.GetValue<string>(), reader.GetInt64(2), reader.GetInt64(3));
    }

    /// <summary>A target as the API shows it (and as it is stored).</summary>
    public static JsonObject ToJson(NotificationTarget t) => new()
    {
        ["name"] = t.Name,
        ["type"] = t.Type,
        ["topic"] = t.Topic,
        ["url"] = t.Url,
        ["to"] = t.To is null ? null : new JsonArray([.. t.To.Select(a => (JsonNode)a)]),
        ["events"] = new JsonArray([.. t.Events.Select(e => (JsonNode)e)]),
        ["minSeverity"] = t.MinSeverity,
        ["createdAt"] = t.CreatedMs == 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds(t.CreatedMs).ToString("O", CultureInfo.InvariantCulture),
        ["updatedAt"] = t.UpdatedMs == 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds(t.UpdatedMs).ToString("O", CultureInfo.InvariantCulture),
    };

    private static TrellisError NotFound(string name) => new TrellisError.NotFound($"Notification target {name} cannot be found.");

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "Notification target {Target} could not take a notification: {Reason}.")]
        public static partial void Failed(ILogger logger, string target, string reason);

        [LoggerMessage(Level = LogLevel.Warning, Message = "A notification to target {Target} ({Address}) was given up after the outbox's maximum age: {Reason}. Check that the receiver is up and reachable.")]
        public static partial void Expired(ILogger logger, string target, string address, string reason);
    }
}
