using D = Trellis.Fleet.Defender;

namespace Trellis.Api.Aws.Iot;

/// <summary>Device Defender Detect: security profiles, their targets, active violations and violation events.</summary>
public sealed partial class IotOperations
{
    public Task<CreateSecurityProfileResponse> CreateSecurityProfileAsync(CreateSecurityProfileRequest request, CancellationToken cancellationToken)
    {
        RefuseExport(request.MetricsExportConfig);
        var profile = Ok(defender.CreateProfile(new D.SecurityProfileDefinition(
            request.SecurityProfileName, request.SecurityProfileDescription, [.. (request.Behaviors ?? []).Select(ToDomain)],
            AlertTargets(request.AlertTargets), Retained(request.AdditionalMetricsToRetain, request.AdditionalMetricsToRetainV2), 0, 0, 0)));
        return DoneAsync(new CreateSecurityProfileResponse { SecurityProfileName = profile.Name, SecurityProfileArn = defender.ProfileArn(profile.Name) });
    }

    public Task<DescribeSecurityProfileResponse> DescribeSecurityProfileAsync(DescribeSecurityProfileRequest request, CancellationToken cancellationToken)
    {
        var p = Ok(defender.DescribeProfile(request.SecurityProfileName));
        return DoneAsync(ProfileView<DescribeSecurityProfileResponse>(p));
    }

    public Task<UpdateSecurityProfileResponse> UpdateSecurityProfileAsync(UpdateSecurityProfileRequest request, CancellationToken cancellationToken)
    {
        RefuseExport(request.MetricsExportConfig);
        var p = Ok(defender.UpdateProfile(request.SecurityProfileName, new D.SecurityProfileChange(
            request.SecurityProfileDescription,
            request.Behaviors is null ? null : [.. request.Behaviors.Select(ToDomain)],
            AlertTargets(request.AlertTargets),
            Retained(request.AdditionalMetricsToRetain, request.AdditionalMetricsToRetainV2),
            request.DeleteBehaviors == true, request.DeleteAlertTargets == true, request.DeleteAdditionalMetricsToRetain == true), request.ExpectedVersion));
        return DoneAsync(ProfileView<UpdateSecurityProfileResponse>(p));
    }

    /// <summary>A profile as Describe and Update both answer it.</summary>
    private T ProfileView<T>(D.SecurityProfileDefinition p)
        where T : ISecurityProfileView, new() => new()
        {
            SecurityProfileName = p.Name,
            SecurityProfileArn = defender.ProfileArn(p.Name),
            SecurityProfileDescription = p.Description,
            Behaviors = [.. p.Behaviors.Select(ToAws)],
            AlertTargets = AlertTargets(p.AlertTargets),
            AdditionalMetricsToRetainV2 = p.AdditionalMetricsToRetain?.Select(m => new MetricToRetain { Metric = m }).ToList(),
            Version = p.Version,
            CreationDate = DateTimeOffset.FromUnixTimeMilliseconds(p.CreatedMs),
            LastModifiedDate = DateTimeOffset.FromUnixTimeMilliseconds(p.UpdatedMs),
        };

    public Task<DeleteSecurityProfileResponse> DeleteSecurityProfileAsync(DeleteSecurityProfileRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<DeleteSecurityProfileResponse>(defender.DeleteProfile(request.SecurityProfileName, request.ExpectedVersion));

    public Task<ListSecurityProfilesResponse> ListSecurityProfilesAsync(ListSecurityProfilesRequest request, CancellationToken cancellationToken)
    {
        if (request.DimensionName is not null)
        {
            throw new AwsErrorException(new TrellisError.InvalidRequest("Metric dimensions are not supported: leave dimensionName out."));
        }

        var page = defender.ListProfiles(request.NextToken, request.MaxResults, request.MetricName);
        return DoneAsync(new ListSecurityProfilesResponse
        {
            SecurityProfileIdentifiers = [.. page.Items.Select(ProfileIdentifier)],
            NextToken = page.NextToken,
        });
    }

    public Task<AttachSecurityProfileResponse> AttachSecurityProfileAsync(AttachSecurityProfileRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<AttachSecurityProfileResponse>(defender.Attach(request.SecurityProfileName, request.SecurityProfileTargetArn));

    public Task<DetachSecurityProfileResponse> DetachSecurityProfileAsync(DetachSecurityProfileRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<DetachSecurityProfileResponse>(defender.Detach(request.SecurityProfileName, request.SecurityProfileTargetArn));

    public Task<ListTargetsForSecurityProfileResponse> ListTargetsForSecurityProfileAsync(ListTargetsForSecurityProfileRequest request, CancellationToken cancellationToken)
    {
        var page = Ok(defender.TargetsOf(request.SecurityProfileName, request.NextToken, request.MaxResults));
        return DoneAsync(new ListTargetsForSecurityProfileResponse
        {
            SecurityProfileTargets = [.. page.Items.Select(t => new SecurityProfileTarget { Arn = t })],
            NextToken = page.NextToken,
        });
    }

    public Task<ListSecurityProfilesForTargetResponse> ListSecurityProfilesForTargetAsync(ListSecurityProfilesForTargetRequest request, CancellationToken cancellationToken)
    {
        var page = defender.ProfilesFor(request.SecurityProfileTargetArn, request.Recursive == true, request.NextToken, request.MaxResults);
        return DoneAsync(new ListSecurityProfilesForTargetResponse
        {
            SecurityProfileTargetMappings = [.. page.Items.Select(m => new SecurityProfileTargetMapping
            {
                SecurityProfileIdentifier = ProfileIdentifier(m.Profile),
                Target = new SecurityProfileTarget { Arn = m.Target },
            })],
            NextToken = page.NextToken,
        });
    }

    public Task<ValidateSecurityProfileBehaviorsResponse> ValidateSecurityProfileBehaviorsAsync(ValidateSecurityProfileBehaviorsRequest request, CancellationToken cancellationToken)
    {
        var errors = D.DefenderMetrics.Validate([.. request.Behaviors.Select(ToDomain)]);
        return DoneAsync(new ValidateSecurityProfileBehaviorsResponse
        {
            Valid = errors.Count == 0,
            ValidationErrors = [.. errors.Select(e => new ValidationError { ErrorMessage = e })],
        });
    }

    public Task<ListActiveViolationsResponse> ListActiveViolationsAsync(ListActiveViolationsRequest request, CancellationToken cancellationToken)
    {
        var page = defender.ActiveViolations(request.ThingName, request.SecurityProfileName, MachineLearningRefused(request.BehaviorCriteriaType),
            request.ListSuppressedAlerts == true, request.VerificationState, request.NextToken, request.MaxResults);
        return DoneAsync(new ListActiveViolationsResponse
        {
            ActiveViolations = [.. page.Items.Select(v => ViolationView<ActiveViolation>(v.ViolationId, v.ThingName, v.Profile, v.Behavior, (v.VerificationState, v.VerificationDescription)) with
            {
                LastViolationValue = ToAws(v.LastValue),
                LastViolationTime = DateTimeOffset.FromUnixTimeMilliseconds(v.LastMs),
                ViolationStartTime = DateTimeOffset.FromUnixTimeMilliseconds(v.StartMs),
            })],
            NextToken = page.NextToken,
        });
    }

    public Task<ListViolationEventsResponse> ListViolationEventsAsync(ListViolationEventsRequest request, CancellationToken cancellationToken)
    {
        if (request.StartTime is not { } start || request.EndTime is not { } end)
        {
            throw new AwsErrorException(new TrellisError.InvalidRequest("Give startTime and endTime."));
        }

        var page = defender.ViolationEvents(start.ToUnixTimeMilliseconds(), end.ToUnixTimeMilliseconds(), request.ThingName, request.SecurityProfileName,
            MachineLearningRefused(request.BehaviorCriteriaType), request.ListSuppressedAlerts == true, request.VerificationState, request.NextToken, request.MaxResults);
        return DoneAsync(new ListViolationEventsResponse
        {
            ViolationEvents = [.. page.Items.Select(e => ViolationView<ViolationEvent>(e.ViolationId, e.ThingName, e.Profile, e.Behavior, (e.VerificationState, e.VerificationDescription)) with
            {
                MetricValue = ToAws(e.Value),
                ViolationEventType = e.Type,
                ViolationEventTime = DateTimeOffset.FromUnixTimeMilliseconds(e.AtMs),
            })],
            NextToken = page.NextToken,
        });
    }

    /// <summary>The members an active violation and a violation event share.</summary>
    private static T ViolationView<T>(string violationId, string thing, string profile, D.Behavior behavior, (string? State, string? Description) verification)
        where T : IViolationView, new() => new()
        {
            ViolationId = violationId,
            ThingName = thing,
            SecurityProfileName = profile,
            Behavior = ToAws(behavior),
            VerificationState = verification.State,
            VerificationStateDescription = verification.Description,
        };

    public Task<PutVerificationStateOnViolationResponse> PutVerificationStateOnViolationAsync(PutVerificationStateOnViolationRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<PutVerificationStateOnViolationResponse>(defender.SetVerificationState(request.ViolationId, request.VerificationState, request.VerificationStateDescription));

    private static string? MachineLearningRefused(string? criteriaType) => criteriaType == "MACHINE_LEARNING"
        ? throw new AwsErrorException(new TrellisError.InvalidRequest("ML Detect is not supported: behaviorCriteriaType is STATIC or STATISTICAL."))
        : criteriaType;

    private static void RefuseExport(MetricsExportConfig? config)
    {
        if (config is not null)
        {
            throw new AwsErrorException(new TrellisError.InvalidRequest("metricsExportConfig is not supported: violations reach you through notification targets (docs/monitoring.md)."));
        }
    }

    private SecurityProfileIdentifier ProfileIdentifier(string name) => new() { Name = name, Arn = defender.ProfileArn(name) };

    private static IReadOnlyList<string>? Retained(IReadOnlyList<string>? v1, IReadOnlyList<MetricToRetain>? v2)
    {
        if (v2?.FirstOrDefault(m => m.MetricDimension is not null) is { } dimensioned)
        {
            throw new AwsErrorException(new TrellisError.InvalidRequest($"Metric dimensions are not supported (additionalMetricsToRetainV2 {dimensioned.Metric})."));
        }

        return v1 is null && v2 is null ? null : [.. (v1 ?? []).Concat((v2 ?? []).Select(m => m.Metric)).Distinct()];
    }

    private static Dictionary<string, D.AlertTarget>? AlertTargets(IReadOnlyDictionary<string, AlertTarget>? targets) =>
        targets?.ToDictionary(t => t.Key, t => new D.AlertTarget(t.Value.AlertTargetArn, t.Value.RoleArn));

    private static Dictionary<string, AlertTarget>? AlertTargets(IReadOnlyDictionary<string, D.AlertTarget>? targets) =>
        targets?.ToDictionary(t => t.Key, t => new AlertTarget { AlertTargetArn = t.Value.AlertTargetArn, RoleArn = t.Value.RoleArn });

    private static D.Behavior ToDomain(Behavior b) => new(
        b.Name,
        b.Metric,
        b.MetricDimension is { } d ? new D.MetricDimension(d.DimensionName, d.Operator) : null,
        b.Criteria is { } c
            ? new D.BehaviorCriteria(c.ComparisonOperator, ToDomain(c.Value), c.DurationSeconds, c.ConsecutiveDatapointsToAlarm, c.ConsecutiveDatapointsToClear,
                c.StatisticalThreshold?.Statistic, c.MlDetectionConfig?.ConfidenceLevel)
            : null,
        b.SuppressAlerts,
        b.ExportMetric);

    private static D.MetricValue? ToDomain(MetricValue? v) => v is null ? null : new(v.Count, v.Cidrs, v.Ports, v.Number, v.Numbers, v.Strings);

    private static Behavior ToAws(D.Behavior b) => new()
    {
        Name = b.Name,
        Metric = b.Metric,
        MetricDimension = b.MetricDimension is { } d ? new MetricDimension { DimensionName = d.DimensionName, Operator = d.Operator } : null,
        Criteria = b.Criteria is { } c
            ? new BehaviorCriteria
            {
                ComparisonOperator = c.ComparisonOperator,
                Value = ToAws(c.Value),
                DurationSeconds = c.DurationSeconds,
                ConsecutiveDatapointsToAlarm = c.ConsecutiveDatapointsToAlarm,
                ConsecutiveDatapointsToClear = c.ConsecutiveDatapointsToClear,
                StatisticalThreshold = c.Statistic is null ? null : new StatisticalThreshold { Statistic = c.Statistic },
                MlDetectionConfig = c.MlConfidenceLevel is null ? null : new MachineLearningDetectionConfig { ConfidenceLevel = c.MlConfidenceLevel },
            }
            : null,
        SuppressAlerts = b.SuppressAlerts,
        ExportMetric = b.ExportMetric,
    };

    private static MetricValue? ToAws(D.MetricValue? v) => v is null ? null : new()
    {
        Count = v.Count,
        Cidrs = v.Cidrs,
        Ports = v.Ports,
        Number = v.Number,
        Numbers = v.Numbers,
        Strings = v.Strings,
    };
}
