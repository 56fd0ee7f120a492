using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Trellis.Core.Errors;

namespace Trellis.Registry.Provisioning;

/// <summary>
/// The device side of fleet provisioning by claim (AWS's MQTT API): a device connected with a
/// shared claim certificate asks for its own certificate (<c>$aws/certificates/create/json</c> or
/// <c>…/create-from-csr/json</c>), then registers itself through a template
/// (<c>$aws/provisioning-templates/{name}/provision/json</c>) with the ownership token it got.
/// A pre-provisioning webhook, when the template has one, may refuse the device or override parameters.
/// </summary>
public sealed partial class FleetProvisioningService(RegistryService registry, HttpClient http, ProvisioningOptions options, ILogger<FleetProvisioningService> logger)
{
    private const string CreatePrefix = "$aws/certificates/create/";
    private const string CreateFromCsrPrefix = "$aws/certificates/create-from-csr/";
    private const string TemplatesPrefix = "$aws/provisioning-templates/";

    /// <summary>A request topic of this API (json or cbor). Cheap: runs on the broker's packet thread.</summary>
    public static bool IsRequestTopic(string topic) =>
        topic is "$aws/certificates/create/json" or "$aws/certificates/create/cbor" or "$aws/certificates/create-from-csr/json" or "$aws/certificates/create-from-csr/cbor"
        || (topic.StartsWith(TemplatesPrefix, StringComparison.Ordinal) && (topic.EndsWith("/provision/json", StringComparison.Ordinal) || topic.EndsWith("/provision/cbor", StringComparison.Ordinal))
            && topic.AsSpan(TemplatesPrefix.Length).IndexOf('/') == topic.Length - TemplatesPrefix.Length - "/provision/json".Length);

    /// <summary>Whether the request makes a certificate (<c>$aws/certificates/create…</c>), which is rate-limited.</summary>
    public static bool MakesCertificate(string topic) =>
        topic.StartsWith(CreatePrefix, StringComparison.Ordinal) || topic.StartsWith(CreateFromCsrPrefix, StringComparison.Ordinal);

    /// <summary>The …/rejected reply for a request refused by the rate limit, in the request's format.</summary>
    public static (string Topic, byte[] Payload) Throttled(string topic, string message)
    {
        var (replyTopic, reply) = Rejected(topic, 429, "ThrottlingException", message);
        return (replyTopic, topic.EndsWith("/cbor", StringComparison.Ordinal) ? CborJson.Encode(reply) : Encoding.UTF8.GetBytes(reply.ToJsonString()));
    }

    /// <summary>Handles one request; returns the reply's topic (…/accepted or …/rejected) and payload, in the request's format (JSON or CBOR).</summary>
    public async Task<(string Topic, byte[] Payload)> HandleAsync(string topic, ReadOnlyMemory<byte> payload, string clientId, string? claimCertificateId, CancellationToken cancellationToken)
    {
        var cbor = topic.EndsWith("/cbor", StringComparison.Ordinal);
        JsonObject? body = null;
        string? invalid = null;
        if (cbor)
        {
            if (!CborJson.TryDecode(payload, out var decoded, out var error))
            {
                invalid = error;
            }

            body = decoded as JsonObject;
        }
        else
        {
            body = ParseObject(payload);
        }

        var (replyTopic, reply) = invalid is not null
            ? Rejected(topic, 400, "InvalidPayload", invalid)
            : await HandleDocumentAsync(topic, body, clientId, claimCertificateId, cancellationToken);
        return (replyTopic, cbor ? CborJson.Encode(reply) : Encoding.UTF8.GetBytes(reply.ToJsonString()));
    }

    private async Task<(string, JsonObject)> HandleDocumentAsync(string topic, JsonObject? body, string clientId, string? claimCertificateId, CancellationToken cancellationToken)
    {
        var format = topic.EndsWith("/cbor", StringComparison.Ordinal) ? "CBOR" : "JSON";
        try
        {
            if (topic.StartsWith(CreatePrefix, StringComparison.Ordinal))
            {
                return CreateCertificate(topic, null);
            }

            if (topic.StartsWith(CreateFromCsrPrefix, StringComparison.Ordinal))
            {
                if (body?["certificateSigningRequest"] is not JsonValue csr || !csr.TryGetValue<string>(out var csrPem))
                {
                    return Rejected(topic, 400, "InvalidPayload", $"The payload must be a {format} map with certificateSigningRequest (a PEM PKCS#10 request).");
                }

                return CreateCertificate(topic, csrPem);
            }

            var name = topic[TemplatesPrefix.Length..topic.IndexOf("/provision/", TemplatesPrefix.Length, StringComparison.Ordinal)];
            return await RegisterThingAsync(topic, name, body, format, clientId, claimCertificateId, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogFailed(logger, topic, clientId, e);
            return Rejected(topic, 500, "InternalError", "Provisioning failed inside the server; the server log has the details. Try again.");
        }
    }

    private (string, JsonObject) CreateCertificate(string topic, string? csrPem)
    {
        var created = registry.CreateClaimedCertificate(csrPem, options.OwnershipTokenLifetime);
        if (!created.IsSuccess)
        {
            return Rejected(topic, 400, "InvalidCsr", created.Error!.Message);
        }

        var (certificate, token) = created.Value;
        var reply = new JsonObject
        {
            ["certificateId"] = certificate.Certificate.Id,
            ["certificatePem"] = certificate.Certificate.Pem,
        };
        if (certificate.PrivateKeyPem is not null)
        {
            reply["privateKey"] = certificate.PrivateKeyPem;
        }

        reply["certificateOwnershipToken"] = token;
        return Accepted(topic, reply);
    }

    private async Task<(string, JsonObject)> RegisterThingAsync(string topic, string templateName, JsonObject? body, string format, string clientId, string? claimCertificateId, CancellationToken cancellationToken)
    {
        if (body?["certificateOwnershipToken"] is not JsonValue tokenValue || !tokenValue.TryGetValue<string>(out var token))
        {
            return Rejected(topic, 400, "InvalidPayload", $"The payload must be a {format} map with certificateOwnershipToken and, optionally, parameters.");
        }

        var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
        if (body["parameters"] is { } parameterNode)
        {
            if (parameterNode is not JsonObject parameterObject || parameterObject.Any(p => p.Value is not JsonValue v || !v.TryGetValue<string>(out _)))
            {
                return Rejected(topic, 400, "InvalidPayload", "parameters must be an object of string values.");
            }

            foreach (var (key, value) in parameterObject)
            {
                parameters[key] = value!.GetValue<string>();
            }
        }

        var template = registry.DescribeProvisioningTemplate(templateName);
        if (!template.IsSuccess)
        {
            return Rejected(topic, 404, "ResourceNotFound", template.Error!.Message);
        }

        if (!template.Value!.Enabled)
        {
            return Rejected(topic, 400, "TemplateDisabled", $"The provisioning template '{templateName}' is disabled.");
        }

        if (template.Value.Type != ProvisioningTemplateType.FleetProvisioning)
        {
            return Rejected(topic, 400, "InvalidTemplate", $"The provisioning template '{templateName}' is a JITP template; devices register through FLEET_PROVISIONING templates.");
        }

        var certificate = registry.CertificateForOwnershipToken(token);
        if (!certificate.IsSuccess)
        {
            return Rejected(topic, 400, "InvalidCertificateOwnershipToken", certificate.Error!.Message);
        }

        if (template.Value.Hook is { } hook)
        {
            var verdict = await CallHookAsync(hook, template.Value, certificate.Value!, claimCertificateId, clientId, parameters, cancellationToken);
            if (verdict.Error is { } refused)
            {
                return Rejected(topic, 403, "AccessDenied", refused);
            }

            foreach (var (key, value) in verdict.Overrides)
            {
                parameters[key] = value;
            }
        }

        var document = TemplateDocument.Parse(template.Value.Body);
        if (!document.IsSuccess)
        {
            return Rejected(topic, 400, "InvalidTemplate", document.Error!.Message);
        }

        parameters[TemplateDocument.CertificateIdParameter] = certificate.Value!.Id;
        var outcome = registry.ApplyTemplate(templateName, document.Value!, parameters);
        if (!outcome.IsSuccess)
        {
            return Rejected(topic, 400, outcome.Error is TrellisError.InvalidRequest ? "InvalidParameters" : "ResourceRegistrationFailure", outcome.Error!.Message);
        }

        registry.ConsumeOwnershipToken(token);
        var configuration = new JsonObject();
        foreach (var (key, value) in outcome.Value!.DeviceConfiguration)
        {
            configuration[key] = value;
        }

        var reply = new JsonObject { ["deviceConfiguration"] = configuration };
        if (outcome.Value.ThingName is not null)
        {
            reply["thingName"] = outcome.Value.ThingName;
        }

        LogProvisioned(logger, outcome.Value.ThingName ?? "(no thing)", certificate.Value.Id, templateName, clientId);
        return Accepted(topic, reply);
    }

    /// <summary>AWS's hook payload (2020-04-01) as a POST; the answer is <c>{"allowProvisioning": bool, "parameterOverrides": {…}}</c>.</summary>
    private async Task<(string? Error, Dictionary<string, string> Overrides)> CallHookAsync(
        ProvisioningHookConfig hook, ProvisioningTemplateRecord template, CertificateRecord certificate, string? claimCertificateId, string clientId, Dictionary<string, string> parameters, CancellationToken cancellationToken)
    {
        var request = new JsonObject
        {
            ["claimCertificateId"] = claimCertificateId,
            ["certificateId"] = certificate.Id,
            ["certificatePem"] = certificate.Pem,
            ["templateArn"] = template.Arn,
            ["clientId"] = clientId,
            ["parameters"] = new JsonObject([.. parameters.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))]),
        };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.HookTimeout);
        JsonObject? answer;
        try
        {
            using var content = new StringContent(request.ToJsonString(), Encoding.UTF8, "application/json");
            using var response = await http.PostAsync(hook.TargetArn, content, timeout.Token);
            if (!response.IsSuccessStatusCode)
            {
                LogHookFailed(logger, hook.TargetArn, $"HTTP {(int)response.StatusCode}");
                return ($"The pre-provisioning hook answered HTTP {(int)response.StatusCode}; the device was not provisioned.", []);
            }

            await using var stream = await response.Content.ReadAsStreamAsync(timeout.Token);
            answer = await JsonNode.ParseAsync(stream, cancellationToken: timeout.Token) switch
            {
                null => null,
                JsonObject body => body,
                _ => throw new JsonException("the answer is not a JSON object"),
            };
        }
        catch (Exception e) when (e is HttpRequestException or JsonException or NotSupportedException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            var reason = e is OperationCanceledException ? $"no answer within {options.HookTimeout.TotalSeconds:0.#} s" : e.Message;
            LogHookFailed(logger, hook.TargetArn, reason);
            return ($"The pre-provisioning hook failed ({reason}); the device was not provisioned.", []);
        }

        if (answer?["allowProvisioning"] is not JsonValue allow || !allow.TryGetValue<bool>(out var allowed))
        {
            LogHookFailed(logger, hook.TargetArn, "the answer has no boolean allowProvisioning");
            return ("The pre-provisioning hook's answer has no boolean allowProvisioning; the device was not provisioned.", []);
        }

        if (!allowed)
        {
            return ("The pre-provisioning hook refused this device (allowProvisioning: false).", []);
        }

        var overrides = new Dictionary<string, string>(StringComparer.Ordinal);
        if (answer["parameterOverrides"] is JsonObject parameterOverrides)
        {
            foreach (var (key, value) in parameterOverrides)
            {
                overrides[key] = value is JsonValue v && v.TryGetValue<string>(out var text) ? text : value?.ToJsonString() ?? string.Empty;
            }
        }

        return (null, overrides);
    }

    private static JsonObject? ParseObject(ReadOnlyMemory<byte> payload)
    {
        if (payload.IsEmpty)
        {
            return null;
        }

        try
        {
            return JsonNode.Parse(payload.Span) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static (string, JsonObject) Accepted(string topic, JsonObject body) => (topic + "/accepted", body);

    private static (string, JsonObject) Rejected(string topic, int status, string code, string message) =>
        (topic + "/rejected", new JsonObject { ["statusCode"] = status, ["errorCode"] = code, ["errorMessage"] = message });

    [LoggerMessage(EventId = 5001, Level = LogLevel.Information, Message = "Provisioned thing {Thing} with certificate {CertificateId} through template {Template} (client {ClientId}).")]
    private static partial void LogProvisioned(ILogger logger, string thing, string certificateId, string template, string clientId);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Warning, Message = "Pre-provisioning hook {Url} failed: {Reason}. The device was refused; check that the webhook is up and answers {{\"allowProvisioning\": true|false}}.")]
    private static partial void LogHookFailed(ILogger logger, string url, string reason);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Error, Message = "Fleet provisioning request on {Topic} from {ClientId} failed inside the server; the device got a 500 rejection.")]
    private static partial void LogFailed(ILogger logger, string topic, string clientId, Exception exception);
}
