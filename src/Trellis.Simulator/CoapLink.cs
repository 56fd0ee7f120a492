using System.Net;
using System.Net.Sockets;
using Trellis.Coap;

namespace Trellis.Simulator;

/// <summary>The answer to one CoAP request: its code (c.dd) and payload.</summary>
public sealed record CoapAnswer(CoapCode Code, ReadOnlyMemory<byte> Payload)
{
    public bool Success => Code.Value >> 5 == 2;

    public override string ToString() => $"{Code.Value >> 5}.{Code.Value & 31:D2} {System.Text.Encoding.UTF8.GetString(Payload.Span)}";
}

/// <summary>
/// A constrained device's CoAP client (RFC 7252): confirmable requests, one at a time, retransmitted
/// with exponential back-off (ACK_TIMEOUT 2 s × a random factor up to 1.5, MAX_RETRANSMIT 4) until
/// the piggybacked answer comes; a separate answer (an empty ACK first) is waited for too. The
/// device names itself with <c>thing=</c> and <c>token=</c> in every request's query.
/// </summary>
public sealed class CoapLink(IPEndPoint server, string thing, string token) : IDisposable
{
    private readonly UdpClient _socket = new(server.AddressFamily);
    private readonly Random _random = new();
    private ushort _messageId = (ushort)Random.Shared.Next(0, 65536);

    public async Task<CoapAnswer> RequestAsync(CoapCode method, string path, ReadOnlyMemory<byte> payload, CancellationToken ct, params (string Name, string Value)[] query)
    {
        var id = unchecked(++_messageId);
        var requestToken = new byte[4];
        _random.NextBytes(requestToken);
        var options = new List<CoapOption>();
        options.AddRange(path.Split('/', StringSplitOptions.RemoveEmptyEntries).Select(s => CoapOption.Text(CoapOption.UriPath, s)));
        if (payload.Length > 0)
        {
            options.Add(CoapOption.Of(CoapOption.ContentFormat, CoapContentFormat.Json));
        }

        options.AddRange(query.Append(("thing", thing)).Append(("token", token)).Select(q => CoapOption.Text(CoapOption.UriQuery, $"{q.Item1}={q.Item2}")));
        var datagram = CoapCodec.Encode(new CoapMessage { Type = CoapType.Confirmable, Code = method, MessageId = id, Token = requestToken, Options = options, Payload = payload });
        var timeout = TimeSpan.FromMilliseconds(2000 * (1 + (_random.NextDouble() * 0.5)));
        var acknowledged = false;
        for (var attempt = 0; attempt <= 4; attempt++)
        {
            if (!acknowledged)
            {
                await _socket.SendAsync(datagram, server, ct);
            }

            using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
            wait.CancelAfter(acknowledged ? TimeSpan.FromSeconds(30) : timeout);
            try
            {
                while (true)
                {
                    var received = await _socket.ReceiveAsync(wait.Token);
                    if (CoapCodec.TryDecode(received.Buffer, out var message, out var type, out var messageId) != CoapFormatError.None || message is null)
                    {
                        continue;
                    }

                    if (type == CoapType.Reset && messageId == id)
                    {
                        throw new IOException($"the server reset {method.Value} /{path}: it could not read the request");
                    }

                    if (type == CoapType.Acknowledgement && messageId == id && message.Code == CoapCode.Empty)
                    {
                        acknowledged = true; // a separate answer follows
                        continue;
                    }

                    if (!message.Token.AsSpan().SequenceEqual(requestToken))
                    {
                        continue; // an old answer
                    }

                    if (type == CoapType.Confirmable)
                    {
                        await _socket.SendAsync(CoapCodec.Encode(new CoapMessage { Type = CoapType.Acknowledgement, Code = CoapCode.Empty, MessageId = messageId }), server, ct);
                    }

                    return new CoapAnswer(message.Code, message.Payload);
                }
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                timeout *= 2;
            }
        }

        throw new TimeoutException($"no answer from the CoAP server at {server} to /{path} after 4 retransmissions");
    }

    public void Dispose() => _socket.Dispose();
}
