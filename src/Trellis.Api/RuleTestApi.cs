using System.Text;
using Trellis.Core.Topics;
using Trellis.Rules.Sql;

namespace Trellis.Api;

/// <summary>
/// <c>POST /api/rules/test</c>: runs a rule's SQL on a sample message without creating the rule or
/// running its actions (the console's test box): whether the topic matches FROM, whether WHERE
/// holds, and what SELECT makes. A SQL mistake is a 400 that names its line and column, as
/// CreateTopicRule's. The SQL dialect has no function that reads or writes anything outside the
/// message, so the test has no side effects; it needs an operator's key, like writing a rule.
/// </summary>
public static class RuleTestApi
{
    public static IEndpointRouteBuilder MapRuleTestApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/rules/test", TestAsync).WithName("TestTopicRule");
        return app;
    }

    private static async Task<IResult> TestAsync(HttpRequest request, TimeProvider time)
    {
        var body = await RequestBody.ReadAsync<RuleTestBody>(request);
        if (body.Value is not { } test)
        {
            return AwsResults.Error(body.Error!);
        }

        if (!TopicValidator.IsValidTopicName(test.Topic))
        {
            return AwsResults.Error("InvalidRequestException", StatusCodes.Status400BadRequest, $"'{test.Topic}' is not a topic a message can be published to (no + or #, not empty).");
        }

        CompiledSql sql;
        try
        {
            sql = CompiledSql.Compile(test.Sql);
        }
        catch (SqlSyntaxException e)
        {
            return AwsResults.Error("SqlParseException", StatusCodes.Status400BadRequest, e.Message);
        }

        var answer = new JsonObject { ["topicFilter"] = sql.TopicFilter, ["topicMatches"] = TopicMatcher.Matches(sql.TopicFilter, test.Topic) };
        var raw = Encoding.UTF8.GetBytes(test.Payload);
        var context = new RuleContext
        {
            Topic = test.Topic,
            Payload = RuleContext.ParsePayload(raw),
            RawPayload = raw,
            ClientId = test.ClientId,
            TimestampMs = time.GetUtcNow().ToUnixTimeMilliseconds(),
        };
        var condition = sql.Condition(context);
        answer["where"] = condition;
        if (condition == true)
        {
            answer["output"] = sql.Project(context) switch
            {
                byte[] bytes => new JsonObject { ["base64"] = Convert.ToBase64String(bytes) },
                JsonNode node => node.DeepClone(),
                _ => null,
            };
        }

        return AwsResults.Json(answer);
    }
}
