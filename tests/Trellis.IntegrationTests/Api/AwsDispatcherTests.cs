using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using Trellis.Api.Aws;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>
/// The model-driven dispatcher: its route table against botocore's own service models, and bad input
/// refused with AWS's errors naming the member (requests signed by botocore's signer).
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class AwsDispatcherTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Every_implemented_operation_matches_the_installed_model_and_has_a_boto3_call_in_the_suites()
    {
        var found = await ExternalTool.RunCheckedAsync("python3", ["-c", "import botocore, os; print(os.path.dirname(botocore.__file__))"], Timeout, cancellationToken: Ct);
        var data = Path.Combine(found.Stdout.Trim(), "data");
        // The suites' sources: boto3 scripts, and the C# tests that drive boto3 (iot_calls.py) or the AWS CLI.
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "Trellis.slnx")))
        {
            root = Path.GetDirectoryName(root.TrimEnd(Path.DirectorySeparatorChar))!;
        }

        var sources = Directory.GetFiles(Path.Combine(root, "tests"), "*.py", SearchOption.AllDirectories)
            .Concat(Directory.GetFiles(Path.Combine(root, "tests"), "*.cs", SearchOption.AllDirectories))
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal) && !f.EndsWith(nameof(AwsDispatcherTests) + ".cs", StringComparison.Ordinal))
            .Select(File.ReadAllText).ToList();
        var implemented = AwsDispatcher.Routes.Where(r => r.Implemented).ToList();
        Assert.NotEmpty(implemented);

        // Every pattern the generator translated from the models' Java syntax compiles in .NET.
        var patterns = typeof(AwsRoute).Assembly.GetTypes().Where(t => t.Name.EndsWith("Patterns", StringComparison.Ordinal))
            .SelectMany(t => t.GetProperties(System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.NonPublic)).ToList();
        Assert.NotEmpty(patterns);
        foreach (var pattern in patterns)
        {
            var regex = pattern.GetValue(null) as System.Text.RegularExpressions.Regex;
            Assert.True(regex is not null, $"{pattern.DeclaringType!.Name}.{pattern.Name} did not compile");
        }
        foreach (var service in implemented.Select(r => r.Service).Distinct())
        {
            var model = Load(data, service);
            var operations = model.GetProperty("operations");
            Assert.Equal(model.GetProperty("metadata").GetProperty("signingName").GetString(), AwsDispatcher.Routes.First(r => r.Service == service).SigningName);
            foreach (var route in implemented.Where(r => r.Service == service))
            {
                Assert.True(operations.TryGetProperty(route.Operation, out var op), $"{service} has no operation {route.Operation}");
                var http = op.GetProperty("http");
                Assert.Equal(http.GetProperty("method").GetString(), route.Method);
                Assert.Equal(http.GetProperty("requestUri").GetString(), route.UriTemplate);
                Assert.Equal(http.TryGetProperty("responseCode", out var code) ? code.GetInt32() : 200, route.SuccessCode);

                // Every member of the input shape, required or not, is bound to a property of the generated request.
                if (op.TryGetProperty("input", out var input))
                {
                    var shapeName = input.GetProperty("shape").GetString()!;
                    var type = typeof(AwsRoute).Assembly.GetType($"Trellis.Api.Aws.{CsName(service)}.{char.ToUpperInvariant(shapeName[0])}{shapeName[1..]}");
                    Assert.True(type is not null, $"no generated type for {shapeName}");
                    var shape = model.GetProperty("shapes").GetProperty(shapeName);
                    foreach (var member in shape.GetProperty("members").EnumerateObject())
                    {
                        Assert.True(type!.GetProperty(char.ToUpperInvariant(member.Name[0]) + member.Name[1..]) is not null, $"{shapeName}.{member.Name} is not bound");
                    }
                }

                // botocore's parser judges the output: some test calls the operation through boto3 or the AWS CLI.
                // botocore's xform_name: DeleteCACertificate → delete_ca_certificate.
                var snake = System.Text.RegularExpressions.Regex.Replace(route.Operation, "(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_").ToLowerInvariant();
                var kebab = snake.Replace('_', '-');
                Assert.True(sources.Any(s => s.Contains("." + snake + "(", StringComparison.Ordinal) || s.Contains('"' + snake + '"', StringComparison.Ordinal) || s.Contains('"' + kebab + '"', StringComparison.Ordinal)),
                    $"no boto3 or AWS CLI call of {route.Operation} ({snake}) in the test suites");
            }
        }
    }

    [Fact]
    public async Task Bad_input_gets_aws_errors_naming_the_member_and_writes_nothing()
    {
        var thing = TrellisHost.Unique("disp");

        // A string over its maximum length (ThingTypeName: 128).
        var tooLong = await host.SignedRequestAsync("POST", $"/things/{thing}", $$"""{"thingTypeName":"{{new string('t', 129)}}"}""", Ct);
        AssertInvalid(tooLong, "'thingTypeName'", "length less than or equal to 128");

        // A wrong type inside a nested structure.
        var wrongType = await host.SignedRequestAsync("POST", $"/things/{thing}", """{"attributePayload":{"merge":"yes"}}""", Ct);
        AssertInvalid(wrongType, "'attributePayload.merge'", "must be true or false");

        // A pattern (thing names: [a-zA-Z0-9:_-]+), in the URI.
        var badName = await host.SignedRequestAsync("POST", "/things/bad%20name", "{}", Ct);
        AssertInvalid(badName, "'thingName'", "regular expression pattern");

        // Malformed JSON.
        var malformed = await host.SignedRequestAsync("POST", $"/things/{thing}", """{"attributePayload": """, Ct);
        AssertInvalid(malformed, "not valid JSON", "");

        // A required query-string member missing, then an enum value outside the model's set.
        var missing = await host.SignedRequestAsync("PUT", $"/certificates/{new string('0', 64)}", null, Ct);
        AssertInvalid(missing, "'newStatus'", "must not be null");
        var badEnum = await host.SignedRequestAsync("PUT", $"/certificates/{new string('0', 64)}?newStatus=SUSPENDED", null, Ct);
        AssertInvalid(badEnum, "'newStatus'", "enum value set: [ACTIVE, INACTIVE, REVOKED, PENDING_TRANSFER, REGISTER_INACTIVE, PENDING_ACTIVATION]");

        // Several violations are reported together (an empty billingGroupName breaks its minimum length and its pattern).
        var two = await host.SignedRequestAsync("POST", $"/things/{thing}", $$"""{"thingTypeName":"{{new string('t', 129)}}","billingGroupName":""}""", Ct);
        AssertInvalid(two, "3 validation errors detected", "'billingGroupName'");

        // None of them created the thing.
        var describe = await host.SignedRequestAsync("GET", $"/things/{thing}", null, Ct);
        Assert.Equal(404, describe["status"]!.GetValue<int>());
        Assert.Equal("ResourceNotFoundException", describe["headers"]!["x-amzn-ErrorType"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_operation_of_the_model_that_trellis_does_not_serve_answers_501_naming_it()
    {
        // ListAuditTasks (GET /audit/tasks, Device Defender's audit) is in the iot model; Trellis does not serve it.
        var answer = await host.SignedRequestAsync("GET", "/audit/tasks", null, Ct);

        Assert.True(answer["status"]!.GetValue<int>() == 501, answer.ToJsonString());
        Assert.Equal("NotImplementedException", answer["headers"]!["x-amzn-ErrorType"]!.GetValue<string>());
        Assert.Contains("ListAuditTasks", answer["body"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);

        // A path no model has is still a 404.
        var unknown = await host.SignedRequestAsync("GET", "/no-such-route", null, Ct);
        Assert.Equal(404, unknown["status"]!.GetValue<int>());
    }

    [Fact]
    public async Task The_audit_log_names_targets_that_travel_in_the_body()
    {
        // AddThingToThingGroup's path is fixed (/thing-groups/addThingToThingGroup): both names are in the body.
        var thing = TrellisHost.Unique("audthing");
        var group = TrellisHost.Unique("audgroup");
        var results = await host.IotCallsAsync(
            [
                ("create_thing", new { thingName = thing }),
                ("create_thing_group", new { thingGroupName = group }),
                ("add_thing_to_thing_group", new { thingGroupName = group, thingName = thing }),
                ("remove_thing_from_thing_group", new { thingGroupName = group, thingName = thing }),
            ],
            Ct);
        Assert.All(results, r => Assert.Equal(200, r!["status"]!.GetValue<int>()));

        var audit = await host.SignedRequestAsync("GET", $"/api/audit?target={group}", null, Ct);
        var events = audit["body"]!["events"]!.AsArray();
        Assert.Equal(["CreateThingGroup", "AddThingToThingGroup", "RemoveThingFromThingGroup"], events.Select(e => e!["operation"]!.GetValue<string>()));
        Assert.Equal($"thingGroupName={group} thingName={thing}", events[1]!["target"]!.GetValue<string>());
    }

    private static void AssertInvalid(JsonNode answer, string part, string other)
    {
        Assert.True(answer["status"]!.GetValue<int>() == 400, answer.ToJsonString());
        Assert.Equal("InvalidRequestException", answer["headers"]!["x-amzn-ErrorType"]!.GetValue<string>());
        var message = answer["body"]!["message"]!.GetValue<string>();
        Assert.Contains(part, message, StringComparison.Ordinal);
        Assert.Contains(other, message, StringComparison.Ordinal);
    }

    private static string CsName(string service) => service switch
    {
        "iot" => "Iot",
        "iot-data" => "IotData",
        _ => "IotJobsData",
    };

    private static JsonElement Load(string data, string service)
    {
        var file = Directory.GetFiles(Path.Combine(data, service), "service-2.json*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).Last();
        using var stream = File.OpenRead(file);
        using Stream json = file.EndsWith(".gz", StringComparison.Ordinal) ? new GZipStream(stream, CompressionMode.Decompress) : stream;
        return JsonDocument.Parse(json).RootElement.Clone();
    }
}
