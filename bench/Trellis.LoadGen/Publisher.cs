using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;

namespace Trellis.LoadGen;

/// <summary>Publishes pre-encoded packets at a fixed rate (or as fast as the socket takes them), in batches.</summary>
internal sealed class Publisher
{
    private const int MaxBatch = 128;
    private readonly Socket _socket;
    private readonly byte[] _template;
    private readonly int _payloadOffset;
    private readonly int _packetIdOffset;
    private readonly byte[] _batch;
    private ushort _packetId;

    public Publisher(Socket socket, string topic, byte qos, int payloadSize)
    {
        _socket = socket;
        _template = MqttWire.PublishTemplate(topic, qos, payloadSize, out _payloadOffset, out _packetIdOffset);
        _batch = new byte[_template.Length * MaxBatch];
        Qos = qos;
    }

    public byte Qos { get; }

    public long Sent;

    public long Acked;

    /// <summary>Sends as fast as the socket takes it for <paramref name="duration"/> (the overload scenario).</summary>
    public async Task RunUnthrottledAsync(TimeSpan duration, int step, CancellationToken ct)
    {
        Interlocked.Exchange(ref Sent, 0);
        var end = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        try
        {
            while (Stopwatch.GetTimestamp() < end && !ct.IsCancellationRequested)
            {
                await SendAsync(MaxBatch, Interlocked.Read(ref Sent), step, ct);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Sends <paramref name="count"/> messages (at most one batch) now; used by the shared pacer.</summary>
    public async ValueTask SendAsync(int count, long sequence, int step, CancellationToken ct)
    {
        count = Math.Min(count, MaxBatch);
        for (var i = 0; i < count; i++)
        {
            var at = i * _template.Length;
            _template.CopyTo(_batch, at);
            if (_packetIdOffset >= 0)
            {
                _packetId = (ushort)(_packetId == ushort.MaxValue ? 1 : _packetId + 1);
                BinaryPrimitives.WriteUInt16BigEndian(_batch.AsSpan(at + _packetIdOffset), _packetId);
            }

            var payload = _batch.AsSpan(at + _payloadOffset);
            BinaryPrimitives.WriteInt64LittleEndian(payload, Stopwatch.GetTimestamp());
            BinaryPrimitives.WriteInt64LittleEndian(payload[8..], sequence + i);
            BinaryPrimitives.WriteInt32LittleEndian(payload[16..], step);
        }

        await _socket.SendAsync(_batch.AsMemory(0, count * _template.Length), ct);
        Interlocked.Add(ref Sent, count);
    }

    /// <summary>QoS 1: drains PUBACKs so the socket never fills with them.</summary>
    public async Task DrainAcksAsync(CancellationToken ct)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var n = await _socket.ReceiveAsync(buffer, ct);
                if (n == 0)
                {
                    return;
                }

                Interlocked.Add(ref Acked, n / 4);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (SocketException)
        {
        }
    }
}
