using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Trellis.Coap;

/// <summary>
/// A CoAP endpoint on one UDP socket (RFC 7252): decodes each datagram, rejects what is malformed
/// (a Reset for a confirmable message, silence otherwise, as §4.2 and §4.3 say), answers a
/// retransmitted request from its cached response within EXCHANGE_LIFETIME instead of running it
/// twice, refuses critical options it does not understand (4.02), and hands every other request
/// to the <see cref="ICoapHandler"/>. A confirmable request gets a piggybacked answer in its ACK, a
/// non-confirmable one a NON answer.
/// </summary>
public sealed partial class CoapEndpoint : IAsyncDisposable
{
    /// <summary>RFC 7252 §4.8.2: how long a confirmable message id stays a duplicate.</summary>
    public static readonly TimeSpan ExchangeLifetime = TimeSpan.FromSeconds(247);

    /// <summary>RFC 7252 §4.8.2: how long a non-confirmable message id stays a duplicate.</summary>
    public static readonly TimeSpan NonLifetime = TimeSpan.FromSeconds(145);

    private readonly Socket _socket;
    private readonly ICoapHandler _handler;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly int _maxExchanges;
    private readonly ConcurrentDictionary<(IPEndPoint Remote, ushort MessageId), Exchange> _exchanges = new();

    /// <summary>The exchanges in the order they began: the sweep and the size bound take the oldest first.</summary>
    private readonly ConcurrentQueue<((IPEndPoint Remote, ushort MessageId) Key, Exchange Exchange)> _exchangeOrder = new();
    private readonly ConcurrentDictionary<(IPEndPoint Remote, string Request), Upload> _uploads = new();
    private readonly ConcurrentDictionary<ushort, Notification> _notifications = new();

    /// <summary>RFC 7252 §4.8: the first retransmission of a confirmable notification after 2-3 s, doubling, at most 4 times.</summary>
    private static readonly TimeSpan AckTimeout = TimeSpan.FromSeconds(2);
    private const double AckRandomFactor = 1.5;
    private const int MaxRetransmit = 4;

    /// <summary>Notifications kept to match a Reset or an ACK against; past it, a NON one is not tracked.</summary>
    private const int MaxTrackedNotifications = 100_000;
    private readonly int _maxBodyBytes;
    private long _uploadBytes;

    /// <summary>What all block-wise uploads under way may hold together; past it a new block is answered 5.03.</summary>
    private const long MaxUploadBytesInFlight = 64L << 20;

    /// <summary>The block size the endpoint answers in when the client names none (RFC 7959: 1024 is the largest).</summary>
    private const int PreferredBlockExponent = 6;
    private readonly CancellationTokenSource _stop = new();
    private int _nextMessageId = Random.Shared.Next(ushort.MaxValue);
    private Task? _loop;
    private Dtls.DtlsSessions? _dtls;

    private CoapEndpoint(Socket socket, ICoapHandler handler, ILogger logger, TimeProvider time, int maxExchanges, int maxBodyBytes)
    {
        _maxBodyBytes = maxBodyBytes;
        _socket = socket;
        _handler = handler;
        _logger = logger;
        _time = time;
        _maxExchanges = maxExchanges;
    }

    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    /// <summary>Requests answered from the duplicate cache instead of being run again.</summary>
    public long Duplicates => Interlocked.Read(ref _duplicates);

    private long _duplicates;

    /// <summary>Exchanges forgotten before EXCHANGE_LIFETIME because more than the bound were remembered.</summary>
    public long ForgottenEarly => Interlocked.Read(ref _forgottenEarly);

    private long _forgottenEarly;

    /// <summary>The DTLS sessions' counters, on a CoAPS endpoint.</summary>
    public (int Sessions, long Handshakes, long Resumptions, long Failed, long Dropped)? DtlsCounters =>
        _dtls is { } d ? (d.Sessions, d.Handshakes, d.Resumptions, d.FailedHandshakes, d.Dropped) : null;

    /// <summary>
    /// Binds the socket (a port in use fails here, with the socket's error) and starts receiving.
    /// <paramref name="maxBodyBytes"/> bounds a request body assembled from Block1 blocks (4.13 past it).
    /// With <paramref name="dtls"/>, every datagram travels in a DTLS session (CoAPS, RFC 7252 §9.1)
    /// and each request carries the identity its session proved.
    /// </summary>
    public static CoapEndpoint Start(IPEndPoint at, ICoapHandler handler, ILogger logger, TimeProvider? time = null, int maxExchanges = 262_144, int maxBodyBytes = 1 << 20,
        Dtls.CoapDtlsOptions? dtls = null)
    {
        ArgumentNullException.ThrowIfNull(at);
        var socket = new Socket(at.AddressFamily, SocketType.Dgram, ProtocolType.Udp) { ExclusiveAddressUse = true };
        try
        {
            socket.Bind(at);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var endpoint = new CoapEndpoint(socket, handler, logger, time ?? TimeProvider.System, maxExchanges, maxBodyBytes);
        if (dtls is not null)
        {
            endpoint._dtls = new Dtls.DtlsSessions(socket, dtls, logger, endpoint.Receive);
            endpoint._dtls.SessionEnded += (remote, closedByClient) => endpoint.SessionEnded?.Invoke(remote, closedByClient);
        }

        endpoint._loop = Task.WhenAll(Task.Run(endpoint.ReceiveLoopAsync), Task.Run(endpoint.SweepLoopAsync), Task.Run(endpoint.RetransmitLoopAsync));
        return endpoint;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _socket.Dispose();
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }

        _stop.Dispose();
    }

    private async Task ReceiveLoopAsync()
    {
        var buffer = GC.AllocateUninitializedArray<byte>(65_536);
        EndPoint any = _socket.AddressFamily == AddressFamily.InterNetworkV6 ? new IPEndPoint(IPAddress.IPv6Any, 0) : new IPEndPoint(IPAddress.Any, 0);
        while (!_stop.IsCancellationRequested)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, any, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e)
            {
                // An ICMP error for an earlier answer (the peer went away): nothing to do for this one.
                LogReceiveFailed(_logger, e.SocketErrorCode);
                continue;
            }

            try
            {
                if (_dtls is { } dtls)
                {
                    dtls.Receive(buffer, received.ReceivedBytes, (IPEndPoint)received.RemoteEndPoint);
                }
                else
                {
                    Receive(buffer.AsSpan(0, received.ReceivedBytes), (IPEndPoint)received.RemoteEndPoint, null);
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                LogDatagramFailed(_logger, received.RemoteEndPoint, e);
            }
        }
    }

    /// <summary>
    /// Raised when a client answers a notification with a Reset, or leaves a confirmable one
    /// unacknowledged through every retransmission (RFC 7641 §3.6, §4.5): its observation ends.
    /// </summary>
    public event Action<IPEndPoint, byte[]>? ObservationEnded;

    /// <summary>Raised when a DTLS session ends, closed by the client (true) or failed or idle (false): what the source observed ends with it.</summary>
    public event Action<IPEndPoint, bool>? SessionEnded;

    /// <summary>
    /// Sends a notification of an observation (RFC 7641 §4.2): the registration's token, the
    /// Observe sequence number, a new message id. A confirmable one is retransmitted until it is
    /// acknowledged (ACK_TIMEOUT, ACK_RANDOM_FACTOR, MAX_RETRANSMIT of RFC 7252 §4.8), and it is
    /// the only confirmable message outstanding to its client (NSTART = 1, §4.7): while one is, a
    /// notification asked to be confirmable goes as non-confirmable. Returns whether it went as a CON.
    /// </summary>
    public bool Notify(IPEndPoint remote, byte[] token, uint sequence, CoapResponse response, bool confirmable)
    {
        ArgumentNullException.ThrowIfNull(remote);
        ArgumentNullException.ThrowIfNull(response);
        var messageId = NextMessageId();
        if (confirmable && !_outstanding.TryAdd(remote, messageId))
        {
            confirmable = false;
        }

        var bytes = CoapCodec.Encode(new CoapMessage
        {
            Type = confirmable ? CoapType.Confirmable : CoapType.NonConfirmable,
            Code = response.Code,
            MessageId = messageId,
            Token = token,
            Options = [.. (response.Options ?? []).Append(CoapOption.Of(CoapOption.Observe, sequence & 0xFFFFFF)).OrderBy(o => o.Number)],
            Payload = response.Payload,
        });
        if (confirmable || _notifications.Count < MaxTrackedNotifications)
        {
            var timeout = AckTimeout * (1 + (Random.Shared.NextDouble() * (AckRandomFactor - 1)));
            _notifications[messageId] = new Notification(remote, token, bytes, confirmable, _time.GetTimestamp(), timeout);
        }

        Send(bytes, remote);
        return confirmable;
    }

    /// <summary>An ACK or a Reset from a client, for a notification this endpoint sent.</summary>
    private void Answered(CoapMessage message, IPEndPoint remote)
    {
        if (_notifications.TryGetValue(message.MessageId, out var sent) && sent.Remote.Equals(remote) && _notifications.TryRemove(message.MessageId, out _))
        {
            _outstanding.TryRemove(new KeyValuePair<IPEndPoint, ushort>(remote, message.MessageId));
            if (message.Type == CoapType.Reset)
            {
                ObservationEnded?.Invoke(remote, sent.Token);
            }
        }
    }

    /// <summary>The confirmable message outstanding to each client, if any (NSTART = 1).</summary>
    private readonly ConcurrentDictionary<IPEndPoint, ushort> _outstanding = new();

    private async Task RetransmitLoopAsync()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(250), _time);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                var now = _time.GetTimestamp();
                foreach (var (messageId, sent) in _notifications)
                {
                    var waited = _time.GetElapsedTime(sent.SentAt, now);
                    if (!sent.Confirmable)
                    {
                        if (waited > NonLifetime)
                        {
                            _notifications.TryRemove(messageId, out _);
                        }
                    }
                    else if (waited >= sent.Timeout)
                    {
                        if (sent.Attempts >= MaxRetransmit)
                        {
                            _notifications.TryRemove(messageId, out _);
                            _outstanding.TryRemove(new KeyValuePair<IPEndPoint, ushort>(sent.Remote, messageId));
                            ObservationEnded?.Invoke(sent.Remote, sent.Token);
                        }
                        else
                        {
                            sent.Attempts++;
                            sent.SentAt = now;
                            sent.Timeout *= 2;
                            Send(sent.Bytes, sent.Remote);
                        }
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void Receive(ReadOnlySpan<byte> datagram, IPEndPoint remote, CoapPeer? peer)
    {
        var error = CoapCodec.TryDecode(datagram, out var message, out var type, out var messageId);
        if (error != CoapFormatError.None)
        {
            LogMalformed(_logger, remote, error);
            if (error is not (CoapFormatError.Truncated or CoapFormatError.UnknownVersion) && type == CoapType.Confirmable)
            {
                Send(Reset(messageId), remote);
            }

            return;
        }

        if (message!.Code == CoapCode.Empty)
        {
            // A CoAP ping (an Empty CON) is answered with a Reset (§4.3); an Empty ACK or Reset
            // answers a notification this endpoint sent.
            if (message.Type == CoapType.Confirmable)
            {
                Send(Reset(message.MessageId), remote);
            }
            else
            {
                Answered(message, remote);
            }

            return;
        }

        if (!message.Code.IsRequest || message.Type is CoapType.Acknowledgement or CoapType.Reset)
        {
            // A response this endpoint did not ask for: reject a confirmable one, ignore the rest (§4.2, §4.3).
            if (message.Type == CoapType.Confirmable)
            {
                Send(Reset(message.MessageId), remote);
            }

            return;
        }

        var key = (remote, message.MessageId);
        var now = _time.GetTimestamp();
        if (_exchanges.TryGetValue(key, out var seen) && !seen.Expired(now, _time))
        {
            Interlocked.Increment(ref _duplicates);
            if (message.Type == CoapType.Confirmable && seen.Response is { } answer)
            {
                Send(answer, remote); // the same answer again; a request still running is answered once it ends
            }

            return;
        }

        var exchange = new Exchange(now, message.Type == CoapType.Confirmable ? ExchangeLifetime : NonLifetime);
        _exchanges[key] = exchange;
        _exchangeOrder.Enqueue((key, exchange));
        while (_exchanges.Count > _maxExchanges && _exchangeOrder.TryDequeue(out var oldest))
        {
            // Under a load that outgrows the bound, the oldest exchanges are forgotten before their
            // lifetime ends: a retransmission that old would run again. Counted, never refused.
            if (_exchanges.TryRemove(new KeyValuePair<(IPEndPoint, ushort), Exchange>(oldest.Key, oldest.Exchange)))
            {
                Interlocked.Increment(ref _forgottenEarly);
            }
        }
        if (Refusal(message) is { } refused)
        {
            Complete(exchange, message, refused, remote);
            return;
        }

        CoapBlock? block2 = null;
        if (message.First(CoapOption.Block2) is { } option)
        {
            block2 = CoapBlock.Read(option);
            if (block2 is null)
            {
                Complete(exchange, message, CoapResponse.Text(CoapCode.BadRequest, "Block2: a block number up to 2^20 and a size exponent of 0-6 (7 is reserved)."), remote);
                return;
            }
        }

        var (whole, early, echo) = Block1(message, remote, peer);
        if (early is not null)
        {
            Complete(exchange, message, early, remote);
            return;
        }

        _ = RunAsync(exchange, message, new CoapRequest(whole!, remote, block2, peer), echo);
    }

    /// <summary>
    /// RFC 7959 §2.5: the blocks of an upload are kept (per source and request) until the last one,
    /// which runs the request with the whole body. Answers 2.31 Continue to each other block, 4.08
    /// to a block that does not follow the one before, 4.13 past the largest body (with Size1).
    /// </summary>
    private (CoapMessage? Whole, CoapResponse? Answer, CoapOption? Echo) Block1(CoapMessage message, IPEndPoint remote, CoapPeer? peer)
    {
        if (message.First(CoapOption.Block1) is not { } option)
        {
            return (message, null, null);
        }

        if (CoapBlock.Read(option) is not { } b)
        {
            return (null, CoapResponse.Text(CoapCode.BadRequest, "Block1: a block number up to 2^20 and a size exponent of 0-6 (7 is reserved)."), null);
        }

        var key = (remote, UploadKey(message));
        var tooLarge = new CoapResponse(CoapCode.RequestEntityTooLarge, System.Text.Encoding.UTF8.GetBytes($"A body is at most {_maxBodyBytes} bytes here."),
            [CoapOption.Of(CoapOption.ContentFormat, CoapContentFormat.TextPlain), CoapOption.Of(CoapOption.Size1, (uint)_maxBodyBytes)]);
        if (b.Number == 0)
        {
            var announced = message.First(CoapOption.Size1)?.AsValue();
            if (announced > _maxBodyBytes)
            {
                return (null, tooLarge, null);
            }

            if (_handler.Admit(new CoapRequest(message, remote, Peer: peer), announced) is { } refused)
            {
                return (null, refused, null);
            }

            Forget(key);
            _uploads[key] = new Upload(_time.GetTimestamp());
        }

        if (!_uploads.TryGetValue(key, out var upload) || upload.Body.Length != b.Offset)
        {
            Forget(key);
            return (null, CoapResponse.Text(CoapCode.RequestEntityIncomplete, $"Block {b.Number} does not follow the blocks received: send the body again from block 0."), null);
        }

        if (b.More && message.Payload.Length != b.Size)
        {
            Forget(key);
            return (null, CoapResponse.Text(CoapCode.BadRequest, $"Block {b.Number} carries {message.Payload.Length} bytes; every block but the last carries its size, {b.Size}."), null);
        }

        if (upload.Body.Length + message.Payload.Length > _maxBodyBytes)
        {
            Forget(key);
            return (null, tooLarge, null);
        }

        if (Interlocked.Add(ref _uploadBytes, message.Payload.Length) > MaxUploadBytesInFlight)
        {
            Interlocked.Add(ref _uploadBytes, -message.Payload.Length);
            return (null, CoapResponse.Text(CoapCode.ServiceUnavailable, "Too many uploads under way; try again later."), null);
        }

        upload.Body.Write(message.Payload.Span);
        upload.Held += message.Payload.Length;
        var echo = b.ToOption(CoapOption.Block1);
        if (b.More)
        {
            return (null, new CoapResponse(CoapCode.Continue, default, [echo]), null);
        }

        Forget(key);
        var whole = new CoapMessage
        {
            Type = message.Type,
            Code = message.Code,
            MessageId = message.MessageId,
            Token = message.Token,
            Options = [.. message.Options.Where(o => o.Number is not (CoapOption.Block1 or CoapOption.Size1))],
            Payload = upload.Body.ToArray(),
        };
        return (whole, null, echo);
    }

    /// <summary>What identifies one upload from a source: method, path and query (RFC 7959 §2.4).</summary>
    private static string UploadKey(CoapMessage message) =>
        message.Code + " " + string.Join('&', message.Options.Where(o => o.Number is CoapOption.UriPath or CoapOption.UriQuery).Select(o => o.Number + "=" + o.AsText()));

    private void Forget((IPEndPoint, string) key)
    {
        if (_uploads.TryRemove(key, out var upload))
        {
            Interlocked.Add(ref _uploadBytes, -upload.Held);
        }
    }

    private async Task RunAsync(Exchange exchange, CoapMessage message, CoapRequest request, CoapOption? echo)
    {
        var remote = request.Remote;
        CoapResponse response;
        try
        {
            response = Blocks(await _handler.HandleAsync(request, _stop.Token), request.Block2);
            if (echo is { } block1)
            {
                response = response with { Options = [.. response.Options ?? [], block1] };
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            return;
        }
        catch (Exception e)
        {
            LogHandlerFailed(_logger, message.Code, message.Path, remote, e);
            response = CoapResponse.Text(CoapCode.InternalServerError, "The server failed to handle this request; it is logged.");
        }

        Complete(exchange, message, response, remote);
    }

    private void Complete(Exchange exchange, CoapMessage request, CoapResponse response, IPEndPoint remote)
    {
        var bytes = Answer(request, response);
        exchange.Response = bytes;
        Send(bytes, remote);
    }

    /// <summary>
    /// RFC 7959 §2.4: a successful answer larger than a block (or any answer to a request that named
    /// a block) goes in the requested block, with Block2 and, on the first, Size2. A resource that
    /// already answered just the block (<see cref="CoapResponse.Size"/>) only gets the options.
    /// </summary>
    private static CoapResponse Blocks(CoapResponse response, CoapBlock? requested)
    {
        if (response.Code.Class != 2)
        {
            return response;
        }

        var exponent = requested?.SizeExponent ?? PreferredBlockExponent;
        var number = requested?.Number ?? 0;
        var size = 1 << (exponent + 4);
        var offset = (long)number * size;
        var total = response.Size ?? response.Payload.Length;
        if (requested is null && total <= size)
        {
            return response;
        }

        if (offset >= total && !(offset == 0 && total == 0))
        {
            return CoapResponse.Text(CoapCode.BadOption, $"Block {number} of {size} bytes starts past the end of this {total}-byte representation.");
        }

        var payload = response.Size is null ? response.Payload.Slice((int)offset, (int)Math.Min(size, total - offset)) : response.Payload;
        var more = offset + payload.Length < total;
        List<CoapOption> options = [.. response.Options ?? [], new CoapBlock((uint)number, more, exponent).ToOption(CoapOption.Block2)];
        if (number == 0)
        {
            options.Add(CoapOption.Of(CoapOption.Size2, (uint)Math.Min(total, uint.MaxValue)));
        }

        return response with { Payload = payload, Options = options, Size = null };
    }

    /// <summary>The options RFC 7252 §5.4.1 and §5.4.5 say to refuse: an unknown critical one, or a critical one repeated that may not be.</summary>
    private static CoapResponse? Refusal(CoapMessage message)
    {
        var seen = new HashSet<ushort>();
        foreach (var option in message.Options)
        {
            if (option.Number is CoapOption.ProxyUri or CoapOption.ProxyScheme)
            {
                return CoapResponse.Text(CoapCode.Of(5, 5), "This endpoint is not a proxy.");
            }

            var known = Supported(option.Number);
            var supernumerary = known && CoapOption.Repeatable(option.Number) == false && !seen.Add(option.Number);
            if ((!known || supernumerary) && CoapOption.IsCritical(option.Number))
            {
                return CoapResponse.Text(CoapCode.BadOption, supernumerary
                    ? $"Critical option {option.Number} appears more than once; it may appear once."
                    : $"Critical option {option.Number} is not supported here.");
            }
        }

        return null;
    }

    /// <summary>Options the endpoint and its resources act on.</summary>
    private static bool Supported(ushort number) => CoapOption.Repeatable(number) is not null;

    private byte[] Answer(CoapMessage request, CoapResponse response)
    {
        var piggybacked = request.Type == CoapType.Confirmable;
        var reply = request.Reply(response.Code, piggybacked ? CoapType.Acknowledgement : CoapType.NonConfirmable,
            piggybacked ? request.MessageId : NextMessageId(), response.Payload, [.. response.Options ?? []]);
        return CoapCodec.Encode(reply);
    }

    private ushort NextMessageId() => (ushort)Interlocked.Increment(ref _nextMessageId);

    private static byte[] Reset(ushort messageId) => CoapCodec.Encode(new CoapMessage { Type = CoapType.Reset, Code = CoapCode.Empty, MessageId = messageId });

    private void Send(byte[] datagram, IPEndPoint remote)
    {
        if (_dtls is { } dtls)
        {
            dtls.Send(datagram, remote);
            return;
        }

        try
        {
            _socket.SendTo(datagram, SocketFlags.None, remote);
        }
        catch (SocketException e)
        {
            LogSendFailed(_logger, remote, e.SocketErrorCode);
        }
        catch (ObjectDisposedException)
        {
            // Stopping.
        }
    }

    private async Task SweepLoopAsync()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(5), _time);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                _dtls?.Sweep();
                var now = _time.GetTimestamp();
                while (_exchangeOrder.TryPeek(out var head) && head.Exchange.Expired(now, _time) && _exchangeOrder.TryDequeue(out head))
                {
                    _exchanges.TryRemove(new KeyValuePair<(IPEndPoint, ushort), Exchange>(head.Key, head.Exchange));
                }

                // An upload whose next block has not come within EXCHANGE_LIFETIME is abandoned.
                foreach (var (key, upload) in _uploads)
                {
                    if (_time.GetElapsedTime(upload.StartedAt, now) > ExchangeLifetime)
                    {
                        Forget(key);
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>A notification sent and not yet acknowledged (a CON) or still open to a Reset (a NON).</summary>
    private sealed class Notification(IPEndPoint remote, byte[] token, byte[] bytes, bool confirmable, long sentAt, TimeSpan timeout)
    {
        public IPEndPoint Remote => remote;

        public byte[] Token => token;

        public byte[] Bytes => bytes;

        public bool Confirmable => confirmable;

        public long SentAt { get; set; } = sentAt;

        public TimeSpan Timeout { get; set; } = timeout;

        public int Attempts { get; set; }
    }

    /// <summary>The blocks of one upload received so far.</summary>
    private sealed class Upload(long startedAt)
    {
        public MemoryStream Body { get; } = new();

        public long Held { get; set; }

        public long StartedAt => startedAt;
    }

    /// <summary>A request seen from one source with one message id, and the answer once there is one.</summary>
    private sealed class Exchange(long startedAt, TimeSpan lifetime)
    {
        public byte[]? Response { get; set; }

        public bool Expired(long now, TimeProvider time) => time.GetElapsedTime(startedAt, now) > lifetime;
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "CoAP: a malformed datagram from {Remote} ({Error}): a confirmable one gets a Reset, the rest is dropped")]
    private static partial void LogMalformed(ILogger logger, IPEndPoint remote, CoapFormatError error);

    [LoggerMessage(Level = LogLevel.Debug, Message = "CoAP: receiving failed ({Error}); the endpoint goes on")]
    private static partial void LogReceiveFailed(ILogger logger, SocketError error);

    [LoggerMessage(Level = LogLevel.Debug, Message = "CoAP: sending to {Remote} failed ({Error})")]
    private static partial void LogSendFailed(ILogger logger, IPEndPoint remote, SocketError error);

    [LoggerMessage(Level = LogLevel.Error, Message = "CoAP: a datagram from {Remote} could not be handled; the endpoint goes on")]
    private static partial void LogDatagramFailed(ILogger logger, EndPoint remote, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "CoAP: {Code} /{Path} from {Remote} failed; answered 5.00")]
    private static partial void LogHandlerFailed(ILogger logger, CoapCode code, string path, IPEndPoint remote, Exception exception);
}
