using System.Buffers;
using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;

namespace Trellis.Device.Ota;

/// <summary>
/// Fetches a file of an AWS IoT stream over the device's MQTT connection, in blocks (JSON
/// requests on <c>$aws/things/{thing}/streams/{stream}/get/json</c>, one <c>…/data/json</c> message
/// per block), appending to a partial file so a restart resumes at the first missing block.
/// </summary>
internal sealed class StreamDownloader(TrellisDevice device, string streamId, int fileId, long size)
{
    public const int BlockSize = 4096;
    private const int BlocksPerRequest = 32;
    private readonly ConcurrentDictionary<long, byte[]> _blocks = new();
    private volatile string? _rejection;

    /// <summary>Downloads into <paramref name="partial"/> (resuming it); the reason when it could not.</summary>
    public async Task<string?> DownloadAsync(string partial, Func<long, Task> progress, int attempts, CancellationToken cancellationToken)
    {
        var prefix = $"$aws/things/{device.ThingName}/streams/{streamId}/";
        await device.SubscribeFiltersAsync([prefix + "data/json", prefix + "rejected/json"], prefix, OnMessage, cancellationToken);
        await using var file = new FileStream(partial, FileMode.OpenOrCreate, FileAccess.Write, FileShare.None, BlockSize, FileOptions.Asynchronous);
        var have = file.Length / BlockSize * BlockSize; // whole blocks only
        file.SetLength(have);
        file.Position = have;
        var failures = 0;
        while (have < size)
        {
            var first = have / BlockSize;
            var count = (int)Math.Min(BlocksPerRequest, ((size - have) + BlockSize - 1) / BlockSize);
            var request = new JsonObject { ["f"] = fileId, ["l"] = BlockSize, ["o"] = first, ["n"] = count };
            await device.PublishAsync(prefix + "get/json", Encoding.UTF8.GetBytes(request.ToJsonString()), 1, cancellationToken);
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (DateTime.UtcNow < deadline && _rejection is null && !Enumerable.Range(0, count).All(i => _blocks.ContainsKey(first + i)))
            {
                await Task.Delay(5, cancellationToken);
            }

            if (_rejection is { } rejected)
            {
                return $"the stream refused the download: {rejected}";
            }

            var wrote = false;
            while (_blocks.TryRemove(have / BlockSize, out var block))
            {
                await file.WriteAsync(block, cancellationToken);
                have += block.Length;
                wrote = true;
            }

            if (!wrote && ++failures >= attempts)
            {
                return $"no blocks arrived from stream '{streamId}' in {attempts} attempts";
            }

            await file.FlushAsync(cancellationToken);
            await progress(have);
        }

        return null;
    }

    private void OnMessage(string topic, ReadOnlySequence<byte> payload)
    {
        if (PendingReplies.Parse(payload) is not { } body)
        {
            return;
        }

        if (topic.EndsWith("/rejected/json", StringComparison.Ordinal))
        {
            _rejection = $"{body["o"]?.GetValue<string>()}: {body["m"]?.GetValue<string>()}";
        }
        else if (body["f"]?.GetValue<int>() == fileId && body["i"]?.GetValue<long>() is { } index && body["p"]?.GetValue<string>() is { } data)
        {
            _blocks[index] = Convert.FromBase64String(data);
        }
    }
}
