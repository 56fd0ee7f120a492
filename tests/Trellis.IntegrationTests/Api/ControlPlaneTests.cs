using System.Text.Json;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>The AWS IoT control plane through boto3, the AWS CLI and raw HTTP: shapes, errors, signing.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class ControlPlaneTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Boto3_gets_aws_shaped_errors_for_bad_input_and_nothing_half_written()
    {
        var prefix = TrellisHost.Unique("api");
        var results = await RunScriptAsync("api_errors.py", [host.Endpoint, prefix]);

        AssertOk(results, "create_thing");
        AssertOk(results, "create_thing_again_same");
        AssertError(results, "create_thing_again_different", "ResourceAlreadyExistsException", 409);
        AssertError(results, "create_thing_bad_name", "InvalidRequestException", 400);
        AssertError(results, "describe_unknown_thing", "ResourceNotFoundException", 404);
        AssertError(results, "update_thing_wrong_version", "VersionConflictException", 409);
        AssertError(results, "update_unknown_thing", "ResourceNotFoundException", 404);
        AssertError(results, "describe_unknown_cert", "ResourceNotFoundException", 404);
        AssertError(results, "describe_malformed_cert_id", "InvalidRequestException", 400);
        AssertError(results, "update_cert_bad_status", "ResourceNotFoundException", 404);
        AssertError(results, "create_policy_malformed", "MalformedPolicyException", 400);
        AssertError(results, "get_policy_after_malformed", "ResourceNotFoundException", 404);
        AssertError(results, "create_policy_bad_effect", "MalformedPolicyException", 400);
        AssertOk(results, "create_policy");
        AssertError(results, "create_policy_duplicate", "ResourceAlreadyExistsException", 409);
        AssertError(results, "attach_policy_unknown_target", "ResourceNotFoundException", 404);
        AssertError(results, "attach_policy_not_an_arn", "InvalidRequestException", 400);
        AssertError(results, "attach_unknown_policy", "ResourceNotFoundException", 404);
        AssertError(results, "attach_thing_principal_unknown_thing", "ResourceNotFoundException", 404);
        AssertError(results, "delete_active_cert", "CertificateStateException", 406);
        AssertError(results, "delete_attached_cert", "DeleteConflictException", 409);
        AssertError(results, "delete_attached_policy", "DeleteConflictException", 409);
        AssertOk(results, "create_policy_version");
        Assert.Equal(["2", "1"], results.GetProperty("versions").EnumerateArray().Select(v => v.GetString()));
        AssertError(results, "set_default_unknown_version", "ResourceNotFoundException", 404);
        AssertError(results, "revoke_then_activate", "CertificateStateException", 406);
        Assert.Equal([$"{prefix}policy"], results.GetProperty("attached").EnumerateArray().Select(v => v.GetString()));
        Assert.Equal([$"{prefix}thing"], results.GetProperty("principal_things").EnumerateArray().Select(v => v.GetString()));
        AssertOk(results, "legacy_attach_principal_policy");
        Assert.Equal($"localhost:{host.MqttsPort}", results.GetProperty("endpoint").GetString());
        Assert.False(results.GetProperty("version1_default").GetBoolean());
        var (created, described) = (results.GetProperty("thing_shapes")[0], results.GetProperty("thing_shapes")[1]);
        foreach (var member in new[] { "thingName", "thingArn", "thingId" })
        {
            Assert.False(string.IsNullOrEmpty(created.GetProperty(member).GetString()), member);
            Assert.Equal(created.GetProperty(member).GetString(), described.GetProperty(member).GetString());
        }

        Assert.Equal(described.GetProperty("thingName").GetString(), described.GetProperty("defaultClientId").GetString());
        Assert.Equal(1, described.GetProperty("version").GetInt64());
        var (current, version2) = (results.GetProperty("policy_shapes")[0], results.GetProperty("policy_shapes")[1]);
        foreach (var shape in new[] { current, version2 })
        {
            Assert.EndsWith(":policy/" + shape.GetProperty("policyName").GetString(), shape.GetProperty("policyArn").GetString(), StringComparison.Ordinal);
            Assert.True(shape.GetProperty("document").GetBoolean() && shape.GetProperty("dates").GetBoolean(), shape.ToString());
            Assert.False(string.IsNullOrEmpty(shape.GetProperty("generationId").GetString()));
        }

        Assert.Equal("2", current.GetProperty("defaultVersionId").GetString());
        Assert.Equal("2", version2.GetProperty("policyVersionId").GetString());
        Assert.True(version2.GetProperty("isDefaultVersion").GetBoolean());
        AssertOk(results, "delete_policy_version");
        Assert.Equal(["2"], results.GetProperty("versions_after_delete").EnumerateArray().Select(v => v.GetString()));
        AssertOk(results, "detach_principal_policy");
        Assert.Empty(results.GetProperty("attached_after_detach").EnumerateArray());
        AssertOk(results, "detach_thing_principal");
        Assert.Empty(results.GetProperty("principal_things_after_detach").EnumerateArray());
        Assert.True(results.GetProperty("policies_listed").GetBoolean());
        var all = results.GetProperty("page1").EnumerateArray().Concat(results.GetProperty("pages_rest").EnumerateArray()).Select(v => v.GetString()).ToList();
        Assert.Equal(2, results.GetProperty("page1").GetArrayLength());
        Assert.Equal(Enumerable.Range(0, 5).Select(i => $"{prefix}page{i}"), all);
    }

    [Fact]
    public async Task Bad_signatures_get_403_saying_what_is_wrong()
    {
        var results = await RunScriptAsync("sigv4_errors.py", [host.Endpoint]);

        Assert.Equal(200, results.GetProperty("good_any_region")[0].GetInt32());
        AssertRejected(results, "wrong_secret", "InvalidSignatureException", "signature we calculated does not match");
        AssertRejected(results, "unknown_key", "UnrecognizedClientException", "AKIAUNKNOWN");
        AssertRejected(results, "expired", "InvalidSignatureException", "Signature expired");
        AssertRejected(results, "unsigned", "MissingAuthenticationTokenException", "Missing Authentication Token");
        AssertRejected(results, "future", "InvalidSignatureException", "Signature expired");
        AssertRejected(results, "wrong_service", "InvalidSignatureException", "'s3' is not one of");
        AssertRejected(results, "credential_date_mismatch", "InvalidSignatureException", "Credential date does not match");
        AssertRejected(results, "missing_date", "IncompleteSignatureException", "X-Amz-Date header is missing");
        AssertRejected(results, "host_not_signed", "IncompleteSignatureException", "SignedHeaders must include host");
    }

    [Fact]
    public async Task Aws_cli_creates_describes_and_reports_unknown_things()
    {
        var thing = TrellisHost.Unique("cli");

        var create = await AwsAsync(["iot", "create-thing", "--thing-name", thing, "--attribute-payload", "{\"attributes\":{\"fw\":\"1.0\"}}"]);
        var describe = await AwsAsync(["iot", "describe-thing", "--thing-name", thing]);
        var missing = await AwsAsync(["iot", "describe-thing", "--thing-name", thing + "x"]);

        Assert.True(create.ExitCode == 0, create.Output);
        using var json = JsonDocument.Parse(describe.Stdout);
        Assert.Equal(thing, json.RootElement.GetProperty("thingName").GetString());
        Assert.Equal("1.0", json.RootElement.GetProperty("attributes").GetProperty("fw").GetString());
        Assert.True(missing.ExitCode is not (0 or -1), $"expected a refusal, not success or a time-out (-1): exit {missing.ExitCode}: {missing.Output}");
        Assert.Contains("ResourceNotFoundException", missing.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Malformed_json_body_gets_invalid_request_exception()
    {
        // Signed by botocore's own SigV4 signer (Scripts/signed_request.py), the body cut off mid-object.
        var answer = await host.SignedRequestAsync("POST", $"/things/{TrellisHost.Unique("json")}", "{\"attributePayload\": ", Ct);

        Assert.Equal(400, answer["status"]!.GetValue<int>());
        Assert.Equal("InvalidRequestException", answer["headers"]!["x-amzn-ErrorType"]!.GetValue<string>());
        Assert.Contains("not valid JSON", answer["body"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    private async Task<ExternalTool.Result> AwsAsync(string[] args) =>
        await ExternalTool.RunAsync("aws", [.. args, "--endpoint-url", host.Endpoint, "--output", "json"], Timeout, host.AwsEnvironment, Ct);

    private async Task<JsonElement> RunScriptAsync(string script, string[] args)
    {
        var result = await ExternalTool.RunAsync("python3", [Path.Combine(AppContext.BaseDirectory, "Scripts", script), .. args], Timeout, host.AwsEnvironment, Ct);
        Assert.True(result.ExitCode == 0, $"{script} failed: {result.Output}");
        return JsonDocument.Parse(result.Stdout).RootElement.Clone();
    }

    private static void AssertOk(JsonElement results, string name) =>
        Assert.True(results.GetProperty(name).ValueKind == JsonValueKind.String && results.GetProperty(name).GetString() == "ok", $"{name}: {results.GetProperty(name)}");

    private static void AssertError(JsonElement results, string name, string code, int status)
    {
        var entry = results.GetProperty(name);
        Assert.True(entry.ValueKind == JsonValueKind.Array, $"{name} should have failed with {code}, got {entry}");
        Assert.Equal(code, entry[0].GetString());
        Assert.Equal(status, entry[1].GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(entry[2].GetString()), $"{name} has no message");
    }

    private static void AssertRejected(JsonElement results, string name, string errorType, string messagePart)
    {
        var entry = results.GetProperty(name);
        Assert.Equal(403, entry[0].GetInt32());
        Assert.Equal(errorType, entry[1].GetString());
        Assert.Contains(messagePart, entry[2].GetString(), StringComparison.Ordinal);
    }
}
