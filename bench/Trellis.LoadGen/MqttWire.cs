using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace Trellis.LoadGen;

/// <summary>Just enough MQTT 3.1.1 to drive a broker: CONNECT, SUBSCRIBE, pre-encoded PUBLISH, PUBACK.</summary>
internal static class MqttWire
{
    /// <summary>Payload layout: send timestamp (8), sequence (8), padding to the message size.</summary>
    public const int TimestampOffset = 0;

    /// <summary>CONNECT; <paramref name="persistent"/> asks for clean session 0 (the broker keeps the session and its QoS 1 messages).</summary>
    public static byte[] Connect(string clientId, ushort keepAlive = 120, bool persistent = false)
    {
        var id = Encoding.UTF8.GetBytes(clientId);
        var body = new List<byte> { 0, 4, (byte)'M', (byte)'Q', (byte)'T', (byte)'T', 4, persistent ? (byte)0x00 : (byte)0x02, (byte)(keepAlive >> 8), (byte)keepAlive, (byte)(id.Length >> 8), (byte)id.Length };
        body.AddRange(id);
        return Frame(0x10, [.. body]);
    }

    public static byte[] Subscribe(string topic, byte qos, ushort packetId = 1)
    {
        var t = Encoding.UTF8.GetBytes(topic);
        var body = new List<byte> { (byte)(packetId >> 8), (byte)packetId, (byte)(t.Length >> 8), (byte)t.Length };
        body.AddRange(t);
        body.Add(qos);
        return Frame(0x82, [.. body]);
    }

    /// <summary>A PUBLISH template; <paramref name="payloadOffset"/> tells where the payload starts.</summary>
    public static byte[] PublishTemplate(string topic, byte qos, int payloadSize, out int payloadOffset, out int packetIdOffset)
    {
        var t = Encoding.UTF8.GetBytes(topic);
        var remaining = 2 + t.Length + (qos > 0 ? 2 : 0) + payloadSize;
        var header = new List<byte> { (byte)(0x30 | (qos << 1)) };
        var length = remaining;
        do
        {
            var digit = (byte)(length % 128);
            length /= 128;
            if (length > 0)
            {
                digit |= 0x80;
            }

            header.Add(digit);
        }
        while (length > 0);
        header.Add((byte)(t.Length >> 8));
        header.Add((byte)t.Length);
        header.AddRange(t);
        packetIdOffset = qos > 0 ? header.Count : -1;
        if (qos > 0)
        {
            header.AddRange([0, 1]);
        }

        payloadOffset = header.Count;
        header.AddRange(new byte[payloadSize]);
        return [.. header];
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

    public static async Task<Socket> OpenAsync(string host, int port, string clientId, CancellationToken ct, bool persistent = false, System.Net.IPAddress? source = null)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (source is not null)
        {
            // One loopback source address gives ~28 000 ephemeral ports: 100 000 connections use several (127.0.0.x).
            // IP_BIND_ADDRESS_NO_PORT: the port is chosen at connect, per destination, as without a bind.
            socket.SetRawSocketOption(0 /* SOL_IP */, 24 /* IP_BIND_ADDRESS_NO_PORT */, BitConverter.GetBytes(1));
            socket.Bind(new System.Net.IPEndPoint(source, 0));
        }

        await socket.ConnectAsync(host, port, ct);
        await socket.SendAsync(Connect(clientId, persistent: persistent), ct);
        var connack = new byte[4];
        await ReceiveExactlyAsync(socket, connack, ct);
        if (connack[0] != 0x20 || connack[3] != 0)
        {
            throw new InvalidOperationException($"CONNACK refused ({connack[3]}) for {clientId}");
        }

        return socket;
    }

    public static async Task SubscribeAsync(Socket socket, string topic, byte qos, CancellationToken ct)
    {
        await socket.SendAsync(Subscribe(topic, qos), ct);
        var suback = new byte[5];
        await ReceiveExactlyAsync(socket, suback, ct);
        if (suback[0] != 0x90 || suback[4] >= 0x80)
        {
            throw new InvalidOperationException($"SUBACK refused for {topic}");
        }
    }

    public static async Task ReceiveExactlyAsync(Socket socket, byte[] buffer, CancellationToken ct)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(read), ct);
            if (n == 0)
            {
                throw new IOException("connection closed");
            }

            read += n;
        }
    }

    public static void PutPubAck(Span<byte> destination, ushort packetId)
    {
        destination[0] = 0x40;
        destination[1] = 2;
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], packetId);
    }
}
