namespace Trellis.Core.Errors;

/// <summary>
/// Typed errors returned by domain operations. Each front-end maps them to its protocol
/// (AWS error type + HTTP status for the API, reason codes for MQTT). <see cref="Code"/> is the
/// AWS error type name and is part of the API contract.
/// </summary>
public abstract record TrellisError(string Code, string Message)
{
    public sealed record NotFound(string Message) : TrellisError("ResourceNotFoundException", Message);

    public sealed record AlreadyExists(string Message, string? ResourceId = null, string? ResourceArn = null) : TrellisError("ResourceAlreadyExistsException", Message);

    public sealed record InvalidRequest(string Message) : TrellisError("InvalidRequestException", Message);

    public sealed record VersionConflict(string Message) : TrellisError("VersionConflictException", Message);

    public sealed record DeleteConflict(string Message) : TrellisError("DeleteConflictException", Message);

    public sealed record CertificateState(string Message) : TrellisError("CertificateStateException", Message);

    public sealed record MalformedPolicy(string Message) : TrellisError("MalformedPolicyException", Message);

    public sealed record VersionsLimitExceeded(string Message) : TrellisError("VersionsLimitExceededException", Message);

    public sealed record LimitExceeded(string Message) : TrellisError("LimitExceededException", Message);

    /// <summary>Too many requests from one principal or in all: retry later (429).</summary>
    public sealed record Throttling(string Message) : TrellisError("ThrottlingException", Message);

    /// <summary>A request or an answer larger than its limit (413).</summary>
    public sealed record RequestEntityTooLarge(string Message) : TrellisError("RequestEntityTooLargeException", Message);

    public sealed record Unauthorized(string Message) : TrellisError("UnauthorizedException", Message);

    public sealed record AccessDenied(string Message) : TrellisError("AccessDeniedException", Message);

    public sealed record CertificateValidation(string Message) : TrellisError("CertificateValidationException", Message);

    public sealed record RegistrationCodeValidation(string Message) : TrellisError("RegistrationCodeValidationException", Message);

    /// <summary>A rule's SQL does not compile; the message names the line and column.</summary>
    public sealed record SqlParse(string Message) : TrellisError("SqlParseException", Message);

    /// <summary>A provisioning template could not be applied (RegisterThing).</summary>
    public sealed record ResourceRegistrationFailure(string Message) : TrellisError("ResourceRegistrationFailureException", Message);

    /// <summary>A job or job execution cannot move from its state to the one asked for (409).</summary>
    public sealed record InvalidStateTransition(string Message) : TrellisError("InvalidStateTransitionException", Message);

    /// <summary>A job execution is in a terminal state and can no longer change (410).</summary>
    public sealed record TerminalState(string Message) : TrellisError("TerminalStateException", Message);

    /// <summary>A fleet-index query that does not parse; the message gives the position (400).</summary>
    public sealed record InvalidQuery(string Message) : TrellisError("InvalidQueryException", Message);

    /// <summary>The fleet index is being built or rebuilt and cannot answer yet (400).</summary>
    public sealed record IndexNotReady(string Message) : TrellisError("IndexNotReadyException", Message);

    /// <summary>An aggregation over a field that cannot be aggregated that way (400).</summary>
    public sealed record InvalidAggregation(string Message) : TrellisError("InvalidAggregationException", Message);

    /// <summary>A request that conflicts with the resource's current state, such as a stale expected version (409).</summary>
    public sealed record Conflict(string Message) : TrellisError("ConflictException", Message);
}
