namespace Trellis.Jobs;

/// <summary>What CreateJob asks for. Settings left out are taken from the template, when one is named.</summary>
public sealed record NewJob
{
    public required string JobId { get; init; }

    /// <summary>Thing and thing-group ARNs.</summary>
    public required IReadOnlyList<string> Targets { get; init; }

    public string? Document { get; init; }

    public string? DocumentSource { get; init; }

    public string? Description { get; init; }

    /// <summary>SNAPSHOT (the default) or CONTINUOUS.</summary>
    public string? TargetSelection { get; init; }

    public JobSettings Settings { get; init; } = new();

    public string? TemplateArn { get; init; }
}

/// <summary>What a device asked for, and the answer's parts: the execution (when there is one) and, on refusal, the error.</summary>
public sealed record DeviceJobResult
{
    public JobExecutionRecord? Execution { get; init; }

    /// <summary>The job document, when the answer includes it.</summary>
    public string? Document { get; init; }

    public JobDeviceError? Error { get; init; }

    public IReadOnlyList<JobExecutionRecord> InProgress { get; init; } = [];

    public IReadOnlyList<JobExecutionRecord> Queued { get; init; } = [];

    public static implicit operator DeviceJobResult(JobDeviceError error) => FromJobDeviceError(error);

    public static DeviceJobResult FromJobDeviceError(JobDeviceError error) => new() { Error = error };
}

/// <summary>
/// A refused device request: <see cref="Code"/> is the MQTT error code (InvalidRequest,
/// ResourceNotFound, VersionMismatch, InvalidStateTransition, TerminalStateReached, InvalidJson);
/// <see cref="State"/> is the execution as it stands, for VersionMismatch and InvalidStateTransition.
/// </summary>
public sealed record JobDeviceError(string Code, string Message, JobExecutionRecord? State = null)
{
    /// <summary>The iot-jobs-data (HTTPS) error type and status for the same refusal.</summary>
    public (string Type, int Status) Http => Code switch
    {
        "ResourceNotFound" => ("ResourceNotFoundException", 404),
        "VersionMismatch" => ("ConflictException", 409),
        "InvalidStateTransition" => ("InvalidStateTransitionException", 409),
        "TerminalStateReached" => ("TerminalStateException", 410),
        _ => ("InvalidRequestException", 400),
    };
}
