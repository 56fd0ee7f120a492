namespace Trellis.Api.Aws.Iot;

/// <summary>
/// The members AWS's model repeats word for word across output shapes of one resource, so a handler
/// fills them once: the generated records are partial, and these interfaces are declared on them here.
/// </summary>
public interface ISecurityProfileView
{
    string? SecurityProfileName { get; init; }

    string? SecurityProfileArn { get; init; }

    string? SecurityProfileDescription { get; init; }

    IReadOnlyList<Behavior>? Behaviors { get; init; }

    IReadOnlyDictionary<string, AlertTarget>? AlertTargets { get; init; }

    IReadOnlyList<MetricToRetain>? AdditionalMetricsToRetainV2 { get; init; }

    long? Version { get; init; }

    DateTimeOffset? CreationDate { get; init; }

    DateTimeOffset? LastModifiedDate { get; init; }
}

/// <summary>What DescribeProvisioningTemplate's output and ListProvisioningTemplates' summaries share.</summary>
public interface IProvisioningTemplateView
{
    string? TemplateArn { get; init; }

    string? TemplateName { get; init; }

    string? Description { get; init; }

    DateTimeOffset? CreationDate { get; init; }

    DateTimeOffset? LastModifiedDate { get; init; }

    bool? Enabled { get; init; }

    string? Type { get; init; }
}

public sealed partial record DescribeSecurityProfileResponse : ISecurityProfileView;

public sealed partial record UpdateSecurityProfileResponse : ISecurityProfileView;

public sealed partial record DescribeProvisioningTemplateResponse : IProvisioningTemplateView;

public sealed partial record ProvisioningTemplateSummary : IProvisioningTemplateView;

/// <summary>What DescribeJob's <c>Job</c> and ListJobs' summaries share.</summary>
public interface IJobView
{
    string? JobArn { get; init; }

    string? JobId { get; init; }

    string? TargetSelection { get; init; }

    string? Status { get; init; }

    DateTimeOffset? CreatedAt { get; init; }

    DateTimeOffset? LastUpdatedAt { get; init; }

    DateTimeOffset? CompletedAt { get; init; }

    bool? IsConcurrent { get; init; }
}

/// <summary>What CreateStream, UpdateStream, DescribeStream's <c>StreamInfo</c> and ListStreams' summaries share.</summary>
public interface IStreamView
{
    string? StreamId { get; init; }

    string? StreamArn { get; init; }

    int? StreamVersion { get; init; }

    string? Description { get; init; }
}

/// <summary>What a device certificate's and a CA certificate's descriptions share.</summary>
public interface ICertificateView
{
    string? CertificateArn { get; init; }

    string? CertificateId { get; init; }

    string? Status { get; init; }

    string? CertificatePem { get; init; }

    string? OwnedBy { get; init; }

    DateTimeOffset? CreationDate { get; init; }

    DateTimeOffset? LastModifiedDate { get; init; }

    int? CustomerVersion { get; init; }

    string? GenerationId { get; init; }

    CertificateValidity? Validity { get; init; }

    string? CertificateMode { get; init; }
}

public sealed partial record Job : IJobView;

public sealed partial record JobSummary : IJobView;

public sealed partial record StreamInfo : IStreamView;

public sealed partial record StreamSummary : IStreamView;

public sealed partial record CreateStreamResponse : IStreamView;

public sealed partial record UpdateStreamResponse : IStreamView;

public sealed partial record CertificateDescription : ICertificateView;

public sealed partial record CACertificateDescription : ICertificateView;
