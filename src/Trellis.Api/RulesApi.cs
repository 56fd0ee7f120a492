using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Trellis.Rules;

namespace Trellis.Api;

/// <summary>Topic rules (AWS IoT's CreateTopicRule family, routes and shapes from botocore).</summary>
public static class RulesApi
{
    public static IEndpointRouteBuilder MapRulesApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/rules/{ruleName}", CreateAsync).WithName("CreateTopicRule");
        app.MapGet("/rules/{ruleName}", Get).WithName("GetTopicRule");
        app.MapGet("/rules", List).WithName("ListTopicRules");
        app.MapMethods("/rules/{ruleName}", ["PATCH"], ReplaceAsync).WithName("ReplaceTopicRule");
        app.MapDelete("/rules/{ruleName}", (string ruleName, RuleEngine rules) => AwsResults.Done(rules.Delete(ruleName))).WithName("DeleteTopicRule");
        app.MapPost("/rules/{ruleName}/enable", (string ruleName, RuleEngine rules) => AwsResults.Done(rules.SetDisabled(ruleName, false))).WithName("EnableTopicRule");
        app.MapPost("/rules/{ruleName}/disable", (string ruleName, RuleEngine rules) => AwsResults.Done(rules.SetDisabled(ruleName, true))).WithName("DisableTopicRule");
        return app;
    }

    private static async Task<IResult> CreateAsync(string ruleName, HttpRequest request, RuleEngine rules)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!body.IsSuccess)
        {
            return AwsResults.Error(body.Error!);
        }

        var created = rules.Create(ruleName, Payload(body.Value!));
        return created.IsSuccess ? AwsResults.Empty() : AwsResults.Error(created.Error!);
    }

    private static async Task<IResult> ReplaceAsync(string ruleName, HttpRequest request, RuleEngine rules)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        return body.IsSuccess ? AwsResults.Done(rules.Replace(ruleName, Payload(body.Value!))) : AwsResults.Error(body.Error!);
    }

    /// <summary>The request body is the TopicRulePayload itself (botocore sends it as the HTTP payload); a wrapped one is accepted too.</summary>
    private static JsonObject Payload(JsonObject body) => body["topicRulePayload"] as JsonObject ?? body;

    private static IResult Get(string ruleName, RuleEngine rules)
    {
        var rule = rules.Get(ruleName);
        if (!rule.IsSuccess)
        {
            return AwsResults.Error(rule.Error!);
        }

        var r = rule.Value!;
        var body = new JsonObject
        {
            ["ruleName"] = r.Name,
            ["sql"] = r.Sql,
            ["description"] = r.Description,
            ["createdAt"] = AwsResults.Timestamp(r.CreatedMs),
            ["actions"] = r.Actions.DeepClone(),
            ["ruleDisabled"] = r.Disabled,
            ["awsIotSqlVersion"] = r.SqlVersion,
        };
        if (r.ErrorAction is not null)
        {
            body["errorAction"] = r.ErrorAction.DeepClone();
        }

        return AwsResults.Json(new JsonObject { ["ruleArn"] = r.Arn, ["rule"] = body });
    }

    private static IResult List(HttpRequest request, RuleEngine rules)
    {
        var max = RequestBody.QueryInt(request, "maxResults");
        if (!max.IsSuccess)
        {
            return AwsResults.Error(max.Error!);
        }

        bool? disabled = request.Query["ruleDisabled"].ToString() is { Length: > 0 } flag ? bool.TryParse(flag, out var b) && b : null;
        var topic = RequestBody.QueryString(request, "topic");
        var token = RequestBody.QueryString(request, "nextToken");
        var (list, next) = rules.List(topic, disabled, token, max.Value);
        var items = new JsonArray([.. list.Select(r => (JsonNode)new JsonObject
        {
            ["ruleArn"] = r.Arn,
            ["ruleName"] = r.Name,
            ["topicPattern"] = r.TopicPattern,
            ["createdAt"] = AwsResults.Timestamp(r.CreatedMs),
            ["ruleDisabled"] = r.Disabled,
        })]);
        return AwsResults.Json(AwsResults.WithNext(new JsonObject { ["rules"] = items }, next));
    }
}
