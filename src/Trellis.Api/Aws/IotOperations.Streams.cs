using Trellis.Jobs.Firmware;

namespace Trellis.Api.Aws.Iot;

/// <summary>Streams: files (firmware images) that devices fetch in blocks over MQTT, as AWS's OTA library does.</summary>
public sealed partial class IotOperations
{
    public Task<CreateStreamResponse> CreateStreamAsync(CreateStreamRequest request, CancellationToken cancellationToken)
    {
        var stream = Ok(streams.Create(request.StreamId, request.Description, Files(request.Files), request.RoleArn));
        return DoneAsync(StreamView<CreateStreamResponse>(stream));
    }

    public Task<UpdateStreamResponse> UpdateStreamAsync(UpdateStreamRequest request, CancellationToken cancellationToken)
    {
        var stream = Ok(streams.Update(request.StreamId, request.Description, request.Files is null ? null : Files(request.Files), request.RoleArn));
        return DoneAsync(StreamView<UpdateStreamResponse>(stream));
    }

    public Task<DescribeStreamResponse> DescribeStreamAsync(DescribeStreamRequest request, CancellationToken cancellationToken)
    {
        var stream = Ok(streams.Describe(request.StreamId));
        return DoneAsync(new DescribeStreamResponse
        {
            StreamInfo = StreamView<StreamInfo>(stream) with
            {
                Files = [.. stream.Files.Select(f => new StreamFile { FileId = f.FileId, S3Location = new S3Location { Bucket = f.Bucket, Key = f.Key, Version = f.S3Version } })],
                CreatedAt = Time(stream.CreatedMs),
                LastUpdatedAt = Time(stream.UpdatedMs),
                RoleArn = stream.RoleArn,
            },
        });
    }

    public Task<ListStreamsResponse> ListStreamsAsync(ListStreamsRequest request, CancellationToken cancellationToken)
    {
        var (page, next) = streams.List(request.NextToken, request.MaxResults, request.AscendingOrder ?? true);
        return DoneAsync(new ListStreamsResponse
        {
            Streams = [.. page.Select(StreamView<StreamSummary>)],
            NextToken = next,
        });
    }

    public Task<DeleteStreamResponse> DeleteStreamAsync(DeleteStreamRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<DeleteStreamResponse>(streams.Delete(request.StreamId));

    private static List<StreamFileRecord> Files(IReadOnlyList<StreamFile> files) =>
        [.. files.Select(f => new StreamFileRecord(f.FileId ?? 0, f.S3Location?.Bucket ?? string.Empty, f.S3Location?.Key ?? string.Empty, f.S3Location?.Version))];

    /// <summary>A stream's members that Create, Update, Describe and List all answer.</summary>
    private static T StreamView<T>(StreamRecord stream)
        where T : IStreamView, new() => new()
        {
            StreamId = stream.StreamId,
            StreamArn = stream.Arn,
            StreamVersion = stream.Version,
            Description = stream.Description,
        };
}
