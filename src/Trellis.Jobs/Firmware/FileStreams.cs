using System.Formats.Cbor;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Trellis.Core.Errors;

namespace Trellis.Jobs.Firmware;

/// <summary>
/// AWS IoT's MQTT file delivery ("streams"): a stream lists files (here: firmware images) that a
/// constrained device fetches in blocks over the MQTT connection it has anyway, which is how AWS's
/// OTA library and its MQTT file-streams downloader fetch images. Control plane: create, update,
/// describe, list, delete. Device side, JSON or CBOR: <c>$aws/things/{thing}/streams/{id}/describe/{fmt}</c>
/// → <c>…/description/{fmt}</c>, and <c>…/get/{fmt}</c> (blocks chosen by offset and count or by a
/// bitmap) → one <c>…/data/{fmt}</c> message per block; refusals on <c>…/rejected/{fmt}</c>.
/// </summary>
public sealed class FileStreams(IFirmwareStore firmware, IJobTargets targets, IJobPublisher publisher, TimeProvider time)
{
    public const int MinBlockSize = 256;
    public const int MaxBlockSize = 128 * 1024;

    /// <summary>The most blocks one get request is answered with.</summary>
    public const int MaxBlocksPerRequest = 1024;

    /// <summary>The most bytes one get request is answered with.</summary>
    public const int MaxBytesPerRequest = 4 << 20;

    private const string Prefix = "$aws/things/";

    public Result<StreamRecord> Create(string streamId, string? description, IReadOnlyList<StreamFileRecord> files, string? roleArn)
    {
        if (FilesError(files) is { } invalid)
        {
            return invalid;
        }

        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var stream = new StreamRecord(streamId, targets.Arn("stream/" + streamId), description, files, roleArn, 1, now, now);
        return firmware.SaveStream(stream, create: true)
            ? stream
            : new TrellisError.AlreadyExists($"A stream with id '{streamId}' already exists.", streamId, stream.Arn);
    }

    /// <summary>Changes the description, the files or the role; a change of files raises the version (devices that name the old version are refused).</summary>
    public Result<StreamRecord> Update(string streamId, string? description, IReadOnlyList<StreamFileRecord>? files, string? roleArn)
    {
        if (firmware.GetStream(streamId) is not { } stream)
        {
            return NotFound(streamId);
        }

        if (files is not null && FilesError(files) is { } invalid)
        {
            return invalid;
        }

        var updated = stream with
        {
            Description = description ?? stream.Description,
            Files = files ?? stream.Files,
            RoleArn = roleArn ?? stream.RoleArn,
            Version = files is null ? stream.Version : stream.Version + 1,
            UpdatedMs = time.GetUtcNow().ToUnixTimeMilliseconds(),
        };
        return firmware.SaveStream(updated, create: false) ? updated : NotFound(streamId);
    }

    public Result<StreamRecord> Describe(string streamId) => firmware.GetStream(streamId) is { } stream ? stream : NotFound(streamId);

    /// <summary>The image behind a stream's file, for the other doors that serve it (CoAP); null when the stream, the file or the image is gone.</summary>
    public FirmwareRecord? ImageOf(string streamId, int fileId) =>
        firmware.GetStream(streamId)?.Files.FirstOrDefault(f => f.FileId == fileId) is { } file ? firmware.Get(file.Key) : null;

    /// <summary>Reads the image from <paramref name="offset"/> into <paramref name="buffer"/>, to its end at most; returns the bytes read (0 past the end).</summary>
    public async Task<int> ReadAsync(FirmwareRecord image, long offset, Memory<byte> buffer)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (offset >= image.Size)
        {
            return 0;
        }

        using var handle = File.OpenHandle(firmware.PathOf(image));
        var wanted = (int)Math.Min(buffer.Length, image.Size - offset);
        var read = 0;
        while (read < wanted && await RandomAccess.ReadAsync(handle, buffer[read..wanted], offset + read) is > 0 and var n)
        {
            read += n;
        }

        return read;
    }

    public (IReadOnlyList<StreamRecord> Page, string? NextToken) List(string? nextToken, int? maxResults, bool ascending)
    {
        var size = Math.Clamp(maxResults ?? 100, 1, 250);
        var items = firmware.ListStreams(nextToken, size + 1, ascending);
        return items.Count > size ? (items.Take(size).ToList(), items[size - 1].StreamId) : (items, null);
    }

    public TrellisError? Delete(string streamId) => firmware.DeleteStream(streamId) ? null : NotFound(streamId);

    /// <summary>Whether <paramref name="topic"/> is a stream request (describe or get, JSON or CBOR).</summary>
    public static bool IsRequest(string topic) => TryParse(topic, out _, out _, out _, out _);

    /// <summary>Answers one device request; false when the topic is not a stream request.</summary>
    public bool HandleMqtt(string topic, ReadOnlyMemory<byte> payload, string? clientId)
    {
        if (!TryParse(topic, out var thing, out var streamId, out var get, out var cbor))
        {
            return false;
        }

        var prefix = $"{Prefix}{thing}/streams/{streamId}/";
        var format = cbor ? "cbor" : "json";
        StreamRequest request;
        try
        {
            request = cbor ? ReadCbor(payload) : ReadJson(payload);
        }
        catch (Exception e) when (e is JsonException or CborContentException or InvalidOperationException or FormatException or OverflowException)
        {
            Reject(prefix, format, cbor, clientId, new StreamRequest(), cbor ? "InvalidCbor" : "InvalidJson", $"The request is not a valid {format.ToUpperInvariant()} map of AWS's stream fields: {e.Message}", null);
            return true;
        }

        if (request.ClientToken is { Length: > 64 })
        {
            Reject(prefix, format, cbor, clientId, request with { ClientToken = null }, "InvalidRequest", "The client token is longer than 64 bytes.", null);
            return true;
        }

        if (firmware.GetStream(streamId) is not { } stream)
        {
            Reject(prefix, format, cbor, clientId, request, "ResourceNotFound", $"Stream '{streamId}' does not exist.", null);
            return true;
        }

        if (!get)
        {
            var files = new List<(int FileId, long Size)>();
            foreach (var file in stream.Files)
            {
                files.Add((file.FileId, firmware.Get(file.Key)?.Size ?? 0));
            }

            publisher.Reply(prefix + "description/" + format, cbor ? DescriptionCbor(request.ClientToken, stream, files) : DescriptionJson(request.ClientToken, stream, files), clientId);
            return true;
        }

        var planned = Plan(stream, request);
        if (planned.Refusal is { } refusal)
        {
            Reject(prefix, format, cbor, clientId, request, refusal.Code, refusal.Message, stream.Version);
            return true;
        }

        SendBlocks(prefix + "data/" + format, cbor, clientId, request.ClientToken, planned.Get!);
        return true;
    }

    private static bool TryParse(string topic, out string thing, out string streamId, out bool get, out bool cbor)
    {
        thing = streamId = string.Empty;
        get = cbor = false;
        if (!topic.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var parts = topic[Prefix.Length..].Split('/');
        if (parts.Length != 5 || parts[1] != "streams" || parts[0].Length == 0 || parts[2].Length == 0
            || parts[3] is not ("get" or "describe") || parts[4] is not ("json" or "cbor"))
        {
            return false;
        }

        (thing, streamId, get, cbor) = (parts[0], parts[2], parts[3] == "get", parts[4] == "cbor");
        return true;
    }

    private TrellisError? FilesError(IReadOnlyList<StreamFileRecord> files)
    {
        if (files.Count is 0 or > 50)
        {
            return new TrellisError.InvalidRequest("A stream has 1 to 50 files.");
        }

        var ids = new HashSet<int>();
        foreach (var file in files)
        {
            if (file.FileId is < 0 or > 255 || !ids.Add(file.FileId))
            {
                return new TrellisError.InvalidRequest($"File id {file.FileId} is out of 0-255 or given twice: each file of a stream has its own id.");
            }

            if (string.IsNullOrEmpty(file.Key) || firmware.Get(file.Key) is null)
            {
                return new TrellisError.NotFound($"s3Location.key '{file.Key}' of file {file.FileId} names no firmware image: Trellis streams images uploaded with trellis firmware upload (the bucket is not used).");
            }
        }

        return null;
    }

    /// <summary>What a get request will send (the file's image, the block size, the blocks), or why it is refused.</summary>
    private (BlockGet? Get, (string Code, string Message)? Refusal) Plan(StreamRecord stream, StreamRequest request)
    {
        if (request.Version is { } version && version != stream.Version)
        {
            return (null, ("VersionMismatch", $"The stream is at version {stream.Version}, not {version}: describe it again."));
        }

        if (request.FileId is not { } fileId || stream.Files.FirstOrDefault(f => f.FileId == fileId) is not { } file)
        {
            return (null, ("ResourceNotFound", $"The stream has no file with id {request.FileId?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "(none given: 'f' is required)"}."));
        }

        if (request.BlockSize is not { } blockSize || blockSize is < MinBlockSize or > MaxBlockSize)
        {
            return (null, ("BlockSizeOutOfBounds", $"'l' (the block size) must be {MinBlockSize} to {MaxBlockSize} bytes."));
        }

        if (firmware.Get(file.Key) is not { } image)
        {
            return (null, ("ResourceNotFound", $"The image behind file {fileId} ('{file.Key}') is no longer stored."));
        }

        var blocks = Blocks(request).ToList();
        if (blocks.Count == 0 || blocks.Count > MaxBlocksPerRequest || (long)blocks.Count * blockSize > MaxBytesPerRequest)
        {
            return (null, ("InvalidRequest", $"Ask for 1 to {MaxBlocksPerRequest} blocks and at most {MaxBytesPerRequest} bytes in one request ('n', or the bits set in 'b')."));
        }

        var count = (image.Size + blockSize - 1) / blockSize;
        return blocks[0] >= count || request.Offset < 0
            ? (null, ("OffsetOutOfBounds", $"Block {blocks[0]} is past the end of file {fileId}, which has {count} blocks of {blockSize} bytes."))
            : (new BlockGet(fileId, image, blockSize, blocks), null);
    }

    /// <summary>The blocks asked for: those whose bit is set in the bitmap (bit i of byte i/8, least significant first, counted from 'o'), else 'n' blocks from 'o'.</summary>
    private static IEnumerable<long> Blocks(StreamRequest request)
    {
        var offset = request.Offset ?? 0;
        if (request.Bitmap is { } bitmap)
        {
            for (var i = 0; i < bitmap.Length * 8; i++)
            {
                if ((bitmap[i / 8] & (1 << (i % 8))) != 0)
                {
                    yield return offset + i;
                }
            }

            yield break;
        }

        var n = request.Count ?? 1;
        for (var i = 0L; i < Math.Min(n, MaxBlocksPerRequest + 1); i++)
        {
            yield return offset + i;
        }
    }

    private void SendBlocks(string topic, bool cbor, string? clientId, string? clientToken, BlockGet get)
    {
        var (fileId, image, blockSize, blocks) = get;
        var buffer = new byte[blockSize];
        using var handle = File.OpenHandle(firmware.PathOf(image));
        foreach (var block in blocks)
        {
            var at = block * blockSize;
            if (at >= image.Size)
            {
                continue; // a bitmap may run past the end of the file
            }

            var read = RandomAccess.Read(handle, buffer.AsSpan(0, (int)Math.Min(blockSize, image.Size - at)), at);
            var data = buffer.AsSpan(0, read);
            byte[] message;
            if (cbor)
            {
                var writer = new CborWriter();
                writer.WriteStartMap(clientToken is null ? 4 : 5);
                if (clientToken is { } token)
                {
                    writer.WriteTextString("c");
                    writer.WriteTextString(token);
                }

                writer.WriteTextString("f");
                writer.WriteInt32(fileId);
                writer.WriteTextString("l");
                writer.WriteInt32(read);
                writer.WriteTextString("i");
                writer.WriteInt64(block);
                writer.WriteTextString("p");
                writer.WriteByteString(data);
                writer.WriteEndMap();
                message = writer.Encode();
            }
            else
            {
                message = Encoding.UTF8.GetBytes(new JsonObject
                {
                    ["c"] = clientToken,
                    ["f"] = fileId,
                    ["l"] = read,
                    ["i"] = block,
                    ["p"] = Convert.ToBase64String(data),
                }.ToJsonString());
            }

            publisher.Reply(topic, message, clientId);
        }
    }

    private void Reject(string prefix, string format, bool cbor, string? clientId, StreamRequest request, string code, string message, int? version)
    {
        byte[] payload;
        if (cbor)
        {
            var writer = new CborWriter();
            writer.WriteStartMap(null);
            writer.WriteTextString("o");
            writer.WriteTextString(code);
            writer.WriteTextString("m");
            writer.WriteTextString(message);
            if (request.ClientToken is { } token)
            {
                writer.WriteTextString("c");
                writer.WriteTextString(token);
            }

            if (version is { } v)
            {
                writer.WriteTextString("s");
                writer.WriteInt32(v);
            }

            writer.WriteEndMap();
            payload = writer.Encode();
        }
        else
        {
            payload = Encoding.UTF8.GetBytes(new JsonObject { ["o"] = code, ["m"] = message, ["c"] = request.ClientToken, ["s"] = version }.ToJsonString());
        }

        publisher.Reply(prefix + "rejected/" + format, payload, clientId);
    }

    private static byte[] DescriptionJson(string? token, StreamRecord stream, List<(int FileId, long Size)> files) =>
        Encoding.UTF8.GetBytes(new JsonObject
        {
            ["c"] = token,
            ["s"] = stream.Version,
            ["d"] = stream.Description,
            ["r"] = new JsonArray([.. files.Select(f => (JsonNode)new JsonObject { ["f"] = f.FileId, ["z"] = f.Size })]),
        }.ToJsonString());

    private static byte[] DescriptionCbor(string? token, StreamRecord stream, List<(int FileId, long Size)> files)
    {
        var writer = new CborWriter();
        writer.WriteStartMap(null);
        if (token is not null)
        {
            writer.WriteTextString("c");
            writer.WriteTextString(token);
        }

        writer.WriteTextString("s");
        writer.WriteInt32(stream.Version);
        if (stream.Description is { } description)
        {
            writer.WriteTextString("d");
            writer.WriteTextString(description);
        }

        writer.WriteTextString("r");
        writer.WriteStartArray(files.Count);
        foreach (var (fileId, size) in files)
        {
            writer.WriteStartMap(2);
            writer.WriteTextString("f");
            writer.WriteInt32(fileId);
            writer.WriteTextString("z");
            writer.WriteInt64(size);
            writer.WriteEndMap();
        }

        writer.WriteEndArray();
        writer.WriteEndMap();
        return writer.Encode();
    }

    private static StreamRequest ReadJson(ReadOnlyMemory<byte> payload)
    {
        if (payload.IsEmpty)
        {
            return new StreamRequest();
        }

        using var document = JsonDocument.Parse(payload);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException("the request is not a JSON object");
        }

        long? Number(string name) => root.TryGetProperty(name, out var v) ? v.GetInt64() : null;
        return new StreamRequest
        {
            ClientToken = root.TryGetProperty("c", out var c) ? c.GetString() : null,
            Version = (int?)Number("s"),
            FileId = (int?)Number("f"),
            BlockSize = (int?)Number("l"),
            Offset = Number("o"),
            Count = Number("n"),
            Bitmap = root.TryGetProperty("b", out var b) ? Convert.FromBase64String(b.GetString() ?? string.Empty) : null,
        };
    }

    private static StreamRequest ReadCbor(ReadOnlyMemory<byte> payload)
    {
        var request = new StreamRequest();
        if (payload.IsEmpty)
        {
            return request;
        }

        var reader = new CborReader(payload, CborConformanceMode.Lax);
        reader.ReadStartMap();
        while (reader.PeekState() != CborReaderState.EndMap)
        {
            var key = reader.ReadTextString();
            request = key switch
            {
                "c" => request with { ClientToken = reader.ReadTextString() },
                "s" => request with { Version = reader.ReadInt32() },
                "f" => request with { FileId = reader.ReadInt32() },
                "l" => request with { BlockSize = reader.ReadInt32() },
                "o" => request with { Offset = reader.ReadInt64() },
                "n" => request with { Count = reader.ReadInt64() },
                "b" => request with { Bitmap = reader.PeekState() == CborReaderState.ByteString ? reader.ReadByteString() : Convert.FromBase64String(reader.ReadTextString()) },
                _ => Skip(reader, request),
            };
        }

        reader.ReadEndMap();
        return request;

        static StreamRequest Skip(CborReader reader, StreamRequest request)
        {
            reader.SkipValue();
            return request;
        }
    }

    private static TrellisError.NotFound NotFound(string streamId) => new($"Stream '{streamId}' does not exist.");

    /// <summary>A get request checked: the file's id and image, the block size, the blocks to send.</summary>
    private sealed record BlockGet(int FileId, FirmwareRecord Image, int BlockSize, List<long> Blocks);

    private sealed record StreamRequest
    {
        public string? ClientToken { get; init; }

        public int? Version { get; init; }

        public int? FileId { get; init; }

        public int? BlockSize { get; init; }

        public long? Offset { get; init; }

        public long? Count { get; init; }

        public byte[]? Bitmap { get; init; }
    }
}
