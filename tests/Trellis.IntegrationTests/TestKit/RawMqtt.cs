using System.Net.Sockets;
using System.Text;

namespace Trellis.IntegrationTests.TestKit;

/// <summary>A bare TCP MQTT client for sending hostile bytes and reading exactly what the broker answers.</summary>
public sealed class RawMqtt : IDisposable
{
    private readonly TcpClient _client = new();
    private NetworkStream _stream = null!;

    public static async Task<RawMqtt> ConnectAsync(int port, CancellationToken ct)
    {
        var raw = new RawMqtt();
        await raw._client.ConnectAsync("127.0.0.1", port, ct);
        raw._stream = raw._client.GetStream();
        return raw;
    }

    public Task SendAsync(byte[] bytes, CancellationToken ct) => _stream.WriteAsync(bytes, ct).AsTask();

    /// <summary>Half-closes the connection (FIN): nothing more will be sent, answers can still be read.</summary>
    public void ShutdownSend() => _client.Client.Shutdown(SocketShutdown.Send);

    /// <summary>Reads what arrives until the peer closes or <paramref name="timeout"/>; Closed tells which.</summary>
    public async Task<(byte[] Bytes, bool Closed)> ReadUntilClosedAsync(TimeSpan timeout, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        var received = new List<byte>();
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                var n = await _stream.ReadAsync(buffer, cts.Token);
                if (n == 0)
                {
                    return ([.. received], true);
                }

                received.AddRange(buffer.AsSpan(0, n).ToArray());
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return ([.. received], false);
        }
        catch (IOException)
        {
            return ([.. received], true);
        }
    }

    /// <summary>Reads one complete packet (fixed header + body).</summary>
    public async Task<byte[]> ReadPacketAsync(TimeSpan timeout, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        var header = new byte[1];
        await _stream.ReadExactlyAsync(header, cts.Token);
        var length = 0;
        var multiplier = 1;
        var lengthBytes = new List<byte>();
        byte b;
        do
        {
            var one = new byte[1];
            await _stream.ReadExactlyAsync(one, cts.Token);
            b = one[0];
            lengthBytes.Add(b);
            length += (b & 0x7F) * multiplier;
            multiplier *= 128;
        }
        while ((b & 0x80) != 0);
        var body = new byte[length];
        await _stream.ReadExactlyAsync(body, cts.Token);
        return [header[0], .. lengthBytes, .. body];
    }

    public void Dispose() => _client.Dispose();

    /// <summary>A CONNECT packet with a user name and password (protocol name and level can be anything).</summary>
    public static byte[] Connect(string clientId, string? user, string? password, byte level = 4, string protocol = "MQTT", bool cleanStart = true, uint sessionExpiry = 0, ushort? receiveMaximum = null,
        string? willTopic = null, string? willPayload = null, uint willDelay = 0)
    {
        var body = new List<byte>();
        AddString(body, protocol);
        body.Add(level);
        byte flags = cleanStart ? (byte)0x02 : (byte)0x00;
        if (willTopic is not null)
        {
            flags |= 0x04 | (1 << 3); // will, QoS 1
        }

        if (user is not null)
        {
            flags |= 0x80;
        }

        if (password is not null)
        {
            flags |= 0x40;
        }

        body.Add(flags);
        body.AddRange([0x00, 0x3C]);
        if (level == 5)
        {
            var props = new List<byte>();
            if (sessionExpiry > 0)
            {
                props.AddRange([0x11, (byte)(sessionExpiry >> 24), (byte)(sessionExpiry >> 16), (byte)(sessionExpiry >> 8), (byte)sessionExpiry]);
            }

            if (receiveMaximum is { } max)
            {
                props.AddRange([0x21, (byte)(max >> 8), (byte)max]);
            }

            body.Add((byte)props.Count);
            body.AddRange(props);
        }

        AddString(body, clientId);
        if (willTopic is not null)
        {
            if (level == 5)
            {
                List<byte> willProps = willDelay > 0 ? [0x18, (byte)(willDelay >> 24), (byte)(willDelay >> 16), (byte)(willDelay >> 8), (byte)willDelay] : [];
                body.Add((byte)willProps.Count);
                body.AddRange(willProps);
            }

            AddString(body, willTopic);
            AddString(body, willPayload ?? string.Empty);
        }

        if (user is not null)
        {
            AddString(body, user);
        }

        if (password is not null)
        {
            AddString(body, password);
        }

        return Frame(0x10, [.. body]);
    }

    /// <summary>A SUBSCRIBE for one filter; MQTT 5 with an optional Subscription Identifier.</summary>
    public static byte[] Subscribe(ushort packetId, string filter, byte qos, bool v5 = false, uint? subscriptionId = null)
    {
        var body = new List<byte> { (byte)(packetId >> 8), (byte)packetId };
        if (v5)
        {
            var props = new List<byte>();
            if (subscriptionId is { } id)
            {
                props.Add(0x0B);
                AddVarInt(props, (int)id);
            }

            AddVarInt(body, props.Count);
            body.AddRange(props);
        }

        AddString(body, filter);
        body.Add(qos);
        return Frame(0x82, [.. body]);
    }

    /// <summary>A QoS 1/2 PUBLISH with a packet id (MQTT 3.1.1 or, with <paramref name="v5"/>, 5.0 without properties).</summary>
    public static byte[] Publish(string topic, string payload, byte qos, ushort packetId, bool v5 = false)
    {
        var body = new List<byte>();
        AddString(body, topic);
        if (qos > 0)
        {
            body.AddRange([(byte)(packetId >> 8), (byte)packetId]);
        }

        if (v5)
        {
            body.Add(0x00);
        }

        body.AddRange(Encoding.UTF8.GetBytes(payload));
        return Frame((byte)(0x30 | (qos << 1)), [.. body]);
    }

    /// <summary>An MQTT 5 PUBLISH with a Topic Alias (an empty <paramref name="topic"/> uses the alias set before); <paramref name="dup"/> sets the DUP flag.</summary>
    public static byte[] PublishV5(string topic, string payload, byte qos, ushort packetId, ushort? topicAlias = null, bool dup = false)
    {
        var body = new List<byte>();
        AddString(body, topic);
        if (qos > 0)
        {
            body.AddRange([(byte)(packetId >> 8), (byte)packetId]);
        }

        List<byte> props = topicAlias is { } alias ? [0x23, (byte)(alias >> 8), (byte)alias] : [];
        body.Add((byte)props.Count);
        body.AddRange(props);
        body.AddRange(Encoding.UTF8.GetBytes(payload));
        return Frame((byte)(0x30 | (dup ? 0x08 : 0) | (qos << 1)), [.. body]);
    }

    /// <summary>PUBACK (0x40), PUBREC (0x50), PUBREL (0x62) or PUBCOMP (0x70) for a packet id.</summary>
    public static byte[] Ack(byte header, ushort packetId) => [header, 0x02, (byte)(packetId >> 8), (byte)packetId];

    /// <summary>What a PUBLISH packet read with <see cref="ReadPacketAsync"/> carries.</summary>
    public sealed record PublishPacket(string Topic, string Payload, byte Qos, ushort PacketId, bool Dup, IReadOnlyList<uint> SubscriptionIds);

    /// <summary>Decodes a PUBLISH from the broker (MQTT 5 properties are skipped except Subscription Identifiers).</summary>
    public static PublishPacket ParsePublish(byte[] packet, bool v5)
    {
        Assert.True((packet[0] >> 4) == 3, $"expected PUBLISH, got packet type {packet[0] >> 4}");
        var qos = (byte)((packet[0] >> 1) & 3);
        var i = 1;
        while ((packet[i] & 0x80) != 0)
        {
            i++;
        }

        i++;
        var topicLength = (packet[i] << 8) | packet[i + 1];
        var topic = Encoding.UTF8.GetString(packet, i + 2, topicLength);
        i += 2 + topicLength;
        ushort id = 0;
        if (qos > 0)
        {
            id = (ushort)((packet[i] << 8) | packet[i + 1]);
            i += 2;
        }

        var ids = new List<uint>();
        if (v5)
        {
            var propLength = ReadVarInt(packet, ref i);
            var end = i + propLength;
            while (i < end)
            {
                var property = packet[i++];
                switch (property)
                {
                    case 0x0B:
                        ids.Add((uint)ReadVarInt(packet, ref i));
                        break;
                    case 0x01:
                        i += 1;
                        break;
                    case 0x02:
                        i += 4;
                        break;
                    case 0x23:
                        i += 2;
                        break;
                    case 0x03 or 0x08 or 0x09:
                        i += 2 + ((packet[i] << 8) | packet[i + 1]);
                        break;
                    case 0x26:
                        i += 2 + ((packet[i] << 8) | packet[i + 1]);
                        i += 2 + ((packet[i] << 8) | packet[i + 1]);
                        break;
                    default:
                        Assert.Fail($"unexpected PUBLISH property 0x{property:X2}");
                        break;
                }
            }
        }

        return new PublishPacket(topic, Encoding.UTF8.GetString(packet, i, packet.Length - i), qos, id, (packet[0] & 0x08) != 0, ids);
    }

    private static int ReadVarInt(byte[] bytes, ref int i)
    {
        var value = 0;
        var multiplier = 1;
        byte b;
        do
        {
            b = bytes[i++];
            value += (b & 0x7F) * multiplier;
            multiplier *= 128;
        }
        while ((b & 0x80) != 0);
        return value;
    }

    private static void AddVarInt(List<byte> bytes, int value)
    {
        do
        {
            var digit = (byte)(value % 128);
            value /= 128;
            if (value > 0)
            {
                digit |= 0x80;
            }

            bytes.Add(digit);
        }
        while (value > 0);
    }

    /// <summary>A PUBLISH with the topic given as raw bytes (so it can be invalid UTF-8).</summary>
    public static byte[] Publish(byte[] topic, byte[] payload, bool v5 = false)
    {
        var body = new List<byte> { (byte)(topic.Length >> 8), (byte)topic.Length };
        body.AddRange(topic);
        if (v5)
        {
            body.Add(0x00);
        }

        body.AddRange(payload);
        return Frame(0x30, [.. body]);
    }

    public static byte[] Frame(byte header, byte[] body)
    {
        var packet = new List<byte> { header };
        var length = body.Length;
        do
        {
            var digit = (byte)(length % 128);
            length /= 128;
            if (length > 0)
            {
                digit |= 0x80;
            }

            packet.Add(digit);
        }
        while (length > 0);
        packet.AddRange(body);
        return [.. packet];
    }

    private static void AddString(List<byte> body, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        body.Add((byte)(bytes.Length >> 8));
        body.Add((byte)bytes.Length);
        body.AddRange(bytes);
    }
}
