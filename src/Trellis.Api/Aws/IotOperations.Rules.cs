using Trellis.Rules;

namespace Trellis.Api.Aws.Iot;

/// <summary>
/// Topic rules (CreateTopicRule, GetTopicRule, ListTopicRules, ReplaceTopicRule, DeleteTopicRule,
/// EnableTopicRule, DisableTopicRule) and their HTTP destinations. A rule's actions reach the rules
/// engine as the JSON documents they were sent as (the generator keeps AWS's Action union as JSON):
/// the engine checks each one and knows Trellis's own targets (nats) beside AWS's.
/// </summary>
public sealed partial class IotOperations
{
    public Task<AwsEmpty> CreateTopicRuleAsync(CreateTopicRuleRequest request, CancellationToken cancellationToken)
    {
        var rule = Input(request.TopicRulePayload);
        Ok(rules.Create(request.RuleName, rule).Error);
        EnsureDestinations(rule);
        return DoneAsync(AwsEmpty.Instance);
    }

    public Task<AwsEmpty> ReplaceTopicRuleAsync(ReplaceTopicRuleRequest request, CancellationToken cancellationToken)
    {
        var rule = Input(request.TopicRulePayload);
        Ok(rules.Replace(request.RuleName, rule));
        EnsureDestinations(rule);
        return DoneAsync(AwsEmpty.Instance);
    }

    public Task<GetTopicRuleResponse> GetTopicRuleAsync(GetTopicRuleRequest request, CancellationToken cancellationToken)
    {
        var r = Ok(rules.Get(request.RuleName));
        return DoneAsync(new GetTopicRuleResponse
        {
            RuleArn = r.Arn,
            Rule = new TopicRule
            {
                RuleName = r.Name,
                Sql = r.Sql,
                Description = r.Description,
                CreatedAt = Time(r.CreatedMs),
                Actions = [.. r.Actions.OfType<JsonObject>()],
                RuleDisabled = r.Disabled,
                AwsIotSqlVersion = r.SqlVersion,
                ErrorAction = r.ErrorAction,
            },
        });
    }

    public Task<ListTopicRulesResponse> ListTopicRulesAsync(ListTopicRulesRequest request, CancellationToken cancellationToken)
    {
        var (list, next) = rules.List(request.Topic, request.RuleDisabled, request.NextToken, request.MaxResults);
        return DoneAsync(new ListTopicRulesResponse
        {
            Rules = [.. list.Select(r => new TopicRuleListItem { RuleArn = r.Arn, RuleName = r.Name, TopicPattern = r.TopicPattern, CreatedAt = Time(r.CreatedMs), RuleDisabled = r.Disabled })],
            NextToken = next,
        });
    }

    public Task<AwsEmpty> DeleteTopicRuleAsync(DeleteTopicRuleRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(rules.Delete(request.RuleName));

    public Task<AwsEmpty> EnableTopicRuleAsync(EnableTopicRuleRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(rules.SetDisabled(request.RuleName, false));

    public Task<AwsEmpty> DisableTopicRuleAsync(DisableTopicRuleRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(rules.SetDisabled(request.RuleName, true));

    public Task<CreateTopicRuleDestinationResponse> CreateTopicRuleDestinationAsync(CreateTopicRuleDestinationRequest request, CancellationToken cancellationToken)
    {
        if (request.DestinationConfiguration.HttpUrlConfiguration is not { } http)
        {
            throw new AwsErrorException(new Core.Errors.TrellisError.InvalidRequest(
                "destinationConfiguration.httpUrlConfiguration is required: Trellis has HTTP destinations only (vpcConfiguration has no counterpart here)."));
        }

        return DoneAsync(new CreateTopicRuleDestinationResponse { TopicRuleDestination = Destination(Ok(destinations.Create(http.ConfirmationUrl, BaseUrl()))) });
    }

    public Task<GetTopicRuleDestinationResponse> GetTopicRuleDestinationAsync(GetTopicRuleDestinationRequest request, CancellationToken cancellationToken) =>
        DoneAsync(new GetTopicRuleDestinationResponse { TopicRuleDestination = Destination(Ok(destinations.Get(request.Arn))) });

    public Task<ListTopicRuleDestinationsResponse> ListTopicRuleDestinationsAsync(ListTopicRuleDestinationsRequest request, CancellationToken cancellationToken)
    {
        var (list, next) = destinations.List(request.NextToken, request.MaxResults);
        return DoneAsync(new ListTopicRuleDestinationsResponse
        {
            // The summary is the destination under other names (httpUrlSummary for httpUrlProperties).
            DestinationSummaries = [.. list.Select(Destination).Select(d => new TopicRuleDestinationSummary
            {
                Arn = d.Arn, Status = d.Status, StatusReason = d.StatusReason, CreatedAt = d.CreatedAt, LastUpdatedAt = d.LastUpdatedAt,
                HttpUrlSummary = new HttpUrlDestinationSummary { ConfirmationUrl = d.HttpUrlProperties!.ConfirmationUrl },
            })],
            NextToken = next,
        });
    }

    public Task<UpdateTopicRuleDestinationResponse> UpdateTopicRuleDestinationAsync(UpdateTopicRuleDestinationRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<UpdateTopicRuleDestinationResponse>(destinations.Update(request.Arn, request.Status, BaseUrl()));

    public Task<DeleteTopicRuleDestinationResponse> DeleteTopicRuleDestinationAsync(DeleteTopicRuleDestinationRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<DeleteTopicRuleDestinationResponse>(destinations.Delete(request.Arn));

    /// <summary>The enableUrl of a confirmation message: the token is the credential, so the request is not signed.</summary>
    public Task<ConfirmTopicRuleDestinationResponse> ConfirmTopicRuleDestinationAsync(ConfirmTopicRuleDestinationRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<ConfirmTopicRuleDestinationResponse>(destinations.Confirm(request.ConfirmationToken));


    private static TopicRuleInput Input(TopicRulePayload payload) =>
        new(payload.Sql, payload.Actions, payload.Description, payload.RuleDisabled ?? false, payload.AwsIotSqlVersion, payload.ErrorAction);

    private static TopicRuleDestination Destination(Rules.TopicRuleDestination d) => new()
    {
        Arn = d.Arn,
        Status = d.Status,
        StatusReason = d.StatusReason,
        CreatedAt = Time(d.CreatedMs),
        LastUpdatedAt = Time(d.UpdatedMs),
        HttpUrlProperties = new HttpUrlDestinationProperties { ConfirmationUrl = d.ConfirmationUrl },
    };

    /// <summary>As on AWS, an http action whose confirmation URL has no destination yet creates one (IN_PROGRESS) and sends it a confirmation message.</summary>
    private void EnsureDestinations(TopicRuleInput rule)
    {
        foreach (var http in rule.Actions.Append(rule.ErrorAction).Select(a => a?["http"]).OfType<JsonObject>())
        {
            var url = http["confirmationUrl"]?.GetValue<string>() ?? http["url"]?.GetValue<string>();
            if (url is not null && !url.Contains("${", StringComparison.Ordinal))
            {
                destinations.EnsureExists(url, BaseUrl());
            }
        }
    }

    /// <summary>Where this API was reached: the base of the enableUrl sent to destinations.</summary>
    private string BaseUrl()
    {
        var request = callers.HttpContext!.Request;
        return $"{request.Scheme}://{request.Host}";
    }
}
