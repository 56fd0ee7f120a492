using Trellis.Jobs;

namespace Trellis.Api.Aws.IotJobsData;

/// <summary>
/// AWS IoT Jobs' data plane over HTTPS (signing name <c>iot-jobs-data</c>), as
/// <c>boto3.client("iot-jobs-data")</c> calls it: the same operations a device has on
/// <c>$aws/things/{thing}/jobs/…</c>, answered by the same service.
/// </summary>
public sealed class IotJobsDataOperations(JobService jobs) : IIotJobsDataOperations
{
    public Task<GetPendingJobExecutionsResponse> GetPendingJobExecutionsAsync(GetPendingJobExecutionsRequest request, CancellationToken cancellationToken)
    {
        var result = Ok(jobs.GetPending(request.ThingName));
        return Task.FromResult(new GetPendingJobExecutionsResponse
        {
            InProgressJobs = [.. result.InProgress.Select(Summary)],
            QueuedJobs = [.. result.Queued.Select(Summary)],
        });
    }

    public Task<StartNextPendingJobExecutionResponse> StartNextPendingJobExecutionAsync(StartNextPendingJobExecutionRequest request, CancellationToken cancellationToken)
    {
        var result = Ok(jobs.StartNext(request.ThingName, Details(request.StatusDetails), request.StepTimeoutInMinutes));
        return Task.FromResult(new StartNextPendingJobExecutionResponse { Execution = Execution(result) });
    }

    public Task<DescribeJobExecutionResponse> DescribeJobExecutionAsync(DescribeJobExecutionRequest request, CancellationToken cancellationToken)
    {
        var result = Ok(jobs.Describe(request.ThingName, request.JobId, request.ExecutionNumber, request.IncludeJobDocument ?? true));
        return Task.FromResult(new DescribeJobExecutionResponse { Execution = Execution(result) });
    }

    public Task<UpdateJobExecutionResponse> UpdateJobExecutionAsync(UpdateJobExecutionRequest request, CancellationToken cancellationToken)
    {
        var result = Ok(jobs.Update(request.ThingName, request.JobId, new JobUpdate
        {
            Status = request.Status,
            StatusDetails = Details(request.StatusDetails),
            ExpectedVersion = request.ExpectedVersion,
            ExecutionNumber = request.ExecutionNumber,
            IncludeJobExecutionState = request.IncludeJobExecutionState ?? false,
            IncludeJobDocument = request.IncludeJobDocument ?? false,
            StepTimeoutInMinutes = request.StepTimeoutInMinutes,
        }));
        return Task.FromResult(new UpdateJobExecutionResponse
        {
            ExecutionState = result.Execution is { } e ? new JobExecutionState { Status = e.Status, StatusDetails = Map(e.StatusDetails), VersionNumber = e.Version } : null,
            JobDocument = result.Document,
        });
    }

    private static DeviceJobResult Ok(DeviceJobResult result)
    {
        if (result.Error is { } error)
        {
            var (type, status) = error.Http;
            throw new AwsErrorException(type, status, error.Message);
        }

        return result;
    }

    private JobExecution? Execution(DeviceJobResult result) => result.Execution is not { } e ? null : new JobExecution
    {
        JobId = e.JobId,
        ThingName = e.Thing,
        Status = e.Status,
        StatusDetails = Map(e.StatusDetails),
        QueuedAt = e.QueuedMs / 1000,
        StartedAt = e.StartedMs / 1000,
        LastUpdatedAt = e.UpdatedMs / 1000,
        ApproximateSecondsBeforeTimedOut = jobs.SecondsBeforeTimeout(e),
        VersionNumber = e.Version,
        ExecutionNumber = e.ExecutionNumber,
        JobDocument = result.Document,
    };

    private static JobExecutionSummary Summary(JobExecutionRecord e) => new()
    {
        JobId = e.JobId,
        QueuedAt = e.QueuedMs / 1000,
        StartedAt = e.StartedMs / 1000,
        LastUpdatedAt = e.UpdatedMs / 1000,
        VersionNumber = e.Version,
        ExecutionNumber = e.ExecutionNumber,
    };

    private static Dictionary<string, string?> Map(IReadOnlyDictionary<string, string> details) =>
        details.ToDictionary(d => d.Key, d => (string?)d.Value, StringComparer.Ordinal);

    private static Dictionary<string, string>? Details(IReadOnlyDictionary<string, string?>? details) =>
        details?.Where(d => d.Value is not null).ToDictionary(d => d.Key, d => d.Value!, StringComparer.Ordinal);
}
