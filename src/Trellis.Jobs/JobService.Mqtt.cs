using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Trellis.Jobs;

/// <summary>AWS IoT's MQTT jobs API: JSON requests on <c>$aws/things/{thing}/jobs/…</c>, answers on <c>…/accepted</c> or <c>…/rejected</c>.</summary>
public sealed partial class JobService
{
    /// <summary>Answers one device request; false when the topic is not a jobs request.</summary>
    public bool HandleMqtt(string topic, ReadOnlyMemory<byte> payload, string? clientId)
    {
        if (Answer(topic, payload) is not { } answer)
        {
            return false;
        }

        _publisher.Reply($"{topic}/{(answer.Accepted ? "accepted" : "rejected")}", Encoding.UTF8.GetBytes(answer.Body.ToJsonString()), clientId);
        return true;
    }

    /// <summary>
    /// The answer to one device request on a jobs topic, as the MQTT API words it: the body that
    /// goes to <c>…/accepted</c>, or to <c>…/rejected</c> (with its <c>code</c>); null when the topic
    /// is not a jobs request. CoAP's jobs resources answer with the same bodies.
    /// </summary>
    public (bool Accepted, JsonObject Body)? Answer(string topic, ReadOnlyMemory<byte> payload)
    {
        if (!JobTopics.TryParse(topic, out var thing, out var jobId, out var operation))
        {
            return null;
        }

        string? clientToken = null;
        DeviceJobResult result;
        try
        {
            using var request = payload.IsEmpty ? JsonDocument.Parse("{}") : JsonDocument.Parse(payload);
            var root = request.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new JsonException("the request is not a JSON object");
            }

            clientToken = root.TryGetProperty("clientToken", out var token) && token.ValueKind == JsonValueKind.String ? token.GetString() : null;
            result = operation switch
            {
                JobTopicOperation.GetPending => GetPending(thing),
                JobTopicOperation.StartNext => StartNext(thing, DetailsOf(root), Long(root, "stepTimeoutInMinutes")),
                JobTopicOperation.Describe => Describe(thing, jobId!, Long(root, "executionNumber"), Bool(root, "includeJobDocument") ?? true),
                _ => Update(thing, jobId!, new JobUpdate
                {
                    Status = root.TryGetProperty("status", out var status) && status.ValueKind == JsonValueKind.String
                        ? status.GetString()!
                        : throw new FormatException("'status' is required: IN_PROGRESS, SUCCEEDED, FAILED or REJECTED."),
                    StatusDetails = DetailsOf(root),
                    ExpectedVersion = Long(root, "expectedVersion"),
                    ExecutionNumber = Long(root, "executionNumber"),
                    IncludeJobExecutionState = Bool(root, "includeJobExecutionState") ?? false,
                    IncludeJobDocument = Bool(root, "includeJobDocument") ?? false,
                    StepTimeoutInMinutes = Long(root, "stepTimeoutInMinutes"),
                }),
            };
        }
        catch (JsonException e)
        {
            result = new JobDeviceError("InvalidJson", $"The request is not valid JSON: {e.Message}");
        }
        catch (FormatException e)
        {
            result = new JobDeviceError("InvalidRequest", e.Message);
        }

        var timestamp = NowMs / 1000;
        JsonObject body;
        if (result.Error is { } error)
        {
            body = new JsonObject { ["code"] = error.Code, ["message"] = error.Message, ["timestamp"] = timestamp };
            if (error.State is { } state)
            {
                body["executionState"] = State(state);
            }
        }
        else
        {
            body = operation switch
            {
                JobTopicOperation.GetPending => new JsonObject
                {
                    ["inProgressJobs"] = new JsonArray([.. result.InProgress.Select(e => (JsonNode?)Summary(e))]),
                    ["queuedJobs"] = new JsonArray([.. result.Queued.Select(e => (JsonNode?)Summary(e))]),
                    ["timestamp"] = timestamp,
                },
                JobTopicOperation.Update => UpdateAnswer(result, timestamp),
                _ => result.Execution is { } execution
                    ? new JsonObject { ["execution"] = ExecutionData(execution, result.Document), ["timestamp"] = timestamp }
                    : new JsonObject { ["timestamp"] = timestamp },
            };
        }

        if (clientToken is not null)
        {
            body["clientToken"] = clientToken;
        }

        return (result.Error is null, body);
    }

    private static JsonObject UpdateAnswer(DeviceJobResult result, long timestamp)
    {
        var body = new JsonObject();
        if (result.Execution is { } execution)
        {
            body["executionState"] = State(execution);
        }

        if (result.Document is { } document)
        {
            body["jobDocument"] = JsonNode.Parse(document);
        }

        body["timestamp"] = timestamp;
        return body;
    }

    private static JsonObject State(JobExecutionRecord e) => new()
    {
        ["status"] = e.Status,
        ["statusDetails"] = Details(e.StatusDetails),
        ["versionNumber"] = e.Version,
    };

    /// <summary>statusDetails: a JSON object of strings (AWS's DetailsMap), or null when absent.</summary>
    private static Dictionary<string, string>? DetailsOf(JsonElement root)
    {
        if (!root.TryGetProperty("statusDetails", out var details) || details.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (details.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException("'statusDetails' must be an object of string values.");
        }

        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var property in details.EnumerateObject())
        {
            map[property.Name] = property.Value.ValueKind == JsonValueKind.String
                ? property.Value.GetString()!
                : throw new FormatException($"statusDetails.{property.Name} must be a string.");
        }

        return map;
    }

    private static long? Long(JsonElement root, string name) =>
        !root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var n) ? n
        : throw new FormatException($"'{name}' must be an integer.");

    private static bool? Bool(JsonElement root, string name) =>
        !root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean()
        : throw new FormatException($"'{name}' must be true or false.");
}
