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
    public static byte[] Connect(string clientId, string? user, string? password, byte level = 4, string protocol = "MQTT")
    {
        var body = new List<byte>();
        AddString(body, protocol);
        body.Add(level);
        byte flags = 0x02;
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
            body.Add(0x00);
        }

        AddString(body, clientId);
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
