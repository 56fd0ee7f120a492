using System.Text.Json;
using System.Text.Json.Serialization;
using Trellis.Telemetry;

namespace Trellis.Api;

/// <summary>PUT /api/alarm-models/{name}.</summary>
public sealed record AlarmModelBody(string Sql, string? Severity = null, string? Thing = null, string? Description = null, bool? ClearOnNormal = null);

/// <summary>PUT /api/notifications/targets/{name}.</summary>
public sealed record NotificationTargetBody(string Type, string? Topic = null, string? Url = null, List<string>? To = null, List<string>? Events = null, string? MinSeverity = null);

/// <summary>POST /api/alarms/{id}/acknowledge and …/clear.</summary>
public sealed record CommentBody(string? Comment = null);

/// <summary>POST /api/things/{thing}/tokens.</summary>
public sealed record DeviceTokenBody(long? ExpiresInSeconds = null, string? Description = null, bool DtlsPsk = false);

/// <summary>POST /api/telemetry/sql.</summary>
public sealed record TelemetrySqlBody(string Sql, long? MaxRows = null);

/// <summary>POST /api/outbox/retry and …/purge: a target (as listed, raw or display form) and/or a rule.</summary>
public sealed record OutboxBody(string? Target = null, string? Rule = null);

/// <summary>POST /api/rules/test: a rule's SQL, a topic and a sample payload (text: JSON or not).</summary>
public sealed record RuleTestBody(string Sql, string Topic, string Payload, string? ClientId = null);

/// <summary>
/// The bodies of Trellis's own <c>/api/</c> routes, bound by System.Text.Json's source generator: member
/// names as written (camelCase), unknown members, missing required members, nulls where a value is
/// needed and numbers in strings all refused, so a handler receives a checked record and reads no JSON.
/// </summary>
[JsonSourceGenerationOptions(
    JsonSerializerDefaults.Web,
    PropertyNameCaseInsensitive = false,
    NumberHandling = JsonNumberHandling.Strict,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    RespectNullableAnnotations = true,
    RespectRequiredConstructorParameters = true)]
[JsonSerializable(typeof(AlarmModelBody))]
[JsonSerializable(typeof(NotificationTargetBody))]
[JsonSerializable(typeof(CommentBody))]
[JsonSerializable(typeof(DeviceTokenBody))]
[JsonSerializable(typeof(TelemetrySqlBody))]
[JsonSerializable(typeof(OutboxBody))]
[JsonSerializable(typeof(RuleTestBody))]
[JsonSerializable(typeof(IReadOnlyList<TelemetryBucket>))]
public sealed partial class ApiJson : JsonSerializerContext;
