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

        app.MapPost("/destinations", CreateDestinationAsync).WithName("CreateTopicRuleDestination");
        app.MapGet("/destinations", ListDestinations).WithName("ListTopicRuleDestinations");
        app.MapGet("/destinations/{**arn}", (string arn, TopicRuleDestinations destinations) => DestinationResult(destinations.Get(arn))).WithName("GetTopicRuleDestination");
        app.MapMethods("/destinations", ["PATCH"], UpdateDestinationAsync).WithName("UpdateTopicRuleDestination");
        app.MapDelete("/destinations/{**arn}", (string arn, TopicRuleDestinations destinations) => AwsResults.Done(destinations.Delete(arn))).WithName("DeleteTopicRuleDestination");

        // The enableUrl of a confirmation message: the token is the credential, so no signature is needed.
        app.MapGet("/confirmdestination/{**token}", (string token, TopicRuleDestinations destinations) => AwsResults.Done(destinations.Confirm(token))).WithName("ConfirmTopicRuleDestination");
        return app;
    }

    private static Task<IResult> CreateAsync(string ruleName, HttpRequest request, RuleEngine rules, TopicRuleDestinations destinations) =>
        SaveAsync(request, destinations, payload => rules.Create(ruleName, payload).Error);

    private static Task<IResult> ReplaceAsync(string ruleName, HttpRequest request, RuleEngine rules, TopicRuleDestinations destinations) =>
        SaveAsync(request, destinations, payload => rules.Replace(ruleName, payload));

    /// <summary>Reads the TopicRulePayload, saves the rule, then creates the destinations its http actions name.</summary>
    private static async Task<IResult> SaveAsync(HttpRequest request, TopicRuleDestinations destinations, Func<JsonObject, Core.Errors.TrellisError?> save)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!body.IsSuccess)
        {
            return AwsResults.Error(body.Error!);
        }

        var payload = Payload(body.Value!);
        if (save(payload) is { } error)
        {
            return AwsResults.Error(error);
        }

        EnsureDestinations(payload, request, destinations);
        return AwsResults.Empty();
    }

    /// <summary>As on AWS, an http action whose confirmation URL has no destination yet creates one (IN_PROGRESS) and sends it a confirmation message.</summary>
    private static void EnsureDestinations(JsonObject payload, HttpRequest request, TopicRuleDestinations destinations)
    {
        var actions = (payload["actions"] as JsonArray ?? []).Append(payload["errorAction"]);
        foreach (var http in actions.Select(a => a?["http"]).OfType<JsonObject>())
        {
            var url = http["confirmationUrl"]?.GetValue<string>() ?? http["url"]?.GetValue<string>();
            if (url is not null && !url.Contains("${", StringComparison.Ordinal))
            {
                destinations.EnsureExists(url, BaseUrl(request));
            }
        }
    }

    /// <summary>Where this API was reached: the base of the enableUrl sent to destinations.</summary>
    private static string BaseUrl(HttpRequest request) => $"{request.Scheme}://{request.Host}";

    private static async Task<IResult> CreateDestinationAsync(HttpRequest request, TopicRuleDestinations destinations)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!body.IsSuccess)
        {
            return AwsResults.Error(body.Error!);
        }

        if (body.Value!["destinationConfiguration"]?["httpUrlConfiguration"]?["confirmationUrl"] is not JsonValue value || !value.TryGetValue<string>(out var url))
        {
            return AwsResults.Error(new Core.Errors.TrellisError.InvalidRequest(
                "destinationConfiguration.httpUrlConfiguration.confirmationUrl is required (Trellis has HTTP destinations only; vpcConfiguration has no counterpart here)."));
        }

        return DestinationResult(destinations.Create(url, BaseUrl(request)));
    }

    private static async Task<IResult> UpdateDestinationAsync(HttpRequest request, TopicRuleDestinations destinations)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!body.IsSuccess)
        {
            return AwsResults.Error(body.Error!);
        }

        var arn = RequestBody.RequiredString(body.Value!, "arn");
        var status = RequestBody.RequiredString(body.Value!, "status");
        if (!arn.IsSuccess || !status.IsSuccess)
        {
            return AwsResults.Error((arn.Error ?? status.Error)!);
        }

        return AwsResults.Done(destinations.Update(arn.Value!, status.Value, BaseUrl(request)));
    }

    private static IResult ListDestinations(HttpRequest request, TopicRuleDestinations destinations)
    {
        var max = RequestBody.QueryInt(request, "maxResults");
        if (!max.IsSuccess)
        {
            return AwsResults.Error(max.Error!);
        }

        var (list, next) = destinations.List(RequestBody.QueryString(request, "nextToken"), max.Value);
        var items = new JsonArray([.. list.Select(d => (JsonNode)Destination(d, "httpUrlSummary"))]);
        return AwsResults.Json(AwsResults.WithNext(new JsonObject { ["destinationSummaries"] = items }, next));
    }

    private static IResult DestinationResult(Core.Errors.Result<TopicRuleDestination> destination) => destination.IsSuccess
        ? AwsResults.Json(new JsonObject { ["topicRuleDestination"] = Destination(destination.Value!, "httpUrlProperties") })
        : AwsResults.Error(destination.Error!);

    private static JsonObject Destination(TopicRuleDestination d, string http) => new()
    {
        ["arn"] = d.Arn,
        ["status"] = d.Status,
        ["statusReason"] = d.StatusReason,
        ["createdAt"] = AwsResults.Timestamp(d.CreatedMs),
        ["lastUpdatedAt"] = AwsResults.Timestamp(d.UpdatedMs),
        [http] = new JsonObject { ["confirmationUrl"] = d.ConfirmationUrl },
    };

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
