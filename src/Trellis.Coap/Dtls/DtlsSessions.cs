using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Security;
using Org.BouncyCastle.Tls;
using Org.BouncyCastle.Tls.Crypto.Impl.BC;

namespace Trellis.Coap.Dtls;

/// <summary>
/// The DTLS sessions of one UDP socket, one per source address. A ClientHello is first answered
/// statelessly with a HelloVerifyRequest cookie (RFC 6347 §4.2.1): only a source that echoes the
/// cookie, so that it receives at its address, gets a handshake, on a thread of its own with at
/// most <see cref="CoapDtlsOptions.MaxHandshakes"/> at once. An established session's records are
/// decrypted on the receiving thread and handed to the CoAP endpoint with the identity the
/// handshake proved; answers are encrypted under the same session. Records that do not
/// authenticate are dropped (a spoofed source cannot end a session), as is anything that is not a
/// ClientHello from a source without a session.
/// </summary>
internal sealed partial class DtlsSessions
{
    /// <summary>The largest DTLS record: 2^14 bytes of plaintext plus the expansion a suite may add.</summary>
    private const int MaxRecordBytes = (1 << 14) + 2048 + 13;

    private readonly Socket _socket;
    private readonly ILogger _logger;
    private readonly DeliverPlaintext _deliver;
    private readonly Lazy<Machinery> _machinery;
    private readonly ConcurrentDictionary<IPEndPoint, Peer> _peers = new();
    private readonly ConcurrentDictionary<string, Kept> _resumable = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<(string Id, Kept Kept)> _resumableOrder = new();
    private readonly ConcurrentDictionary<(IPAddress, string), long> _loggedRefusals = new();

    /// <summary>Where a record is decrypted: the receiving thread's, or a handshake thread's while it reads what came early.</summary>
    [ThreadStatic]
    private static byte[]? t_plain;
    private int _handshaking;
    private long _handshakes;
    private long _resumptions;
    private long _failedHandshakes;
    private long _dropped;

    public DtlsSessions(Socket socket, CoapDtlsOptions options, ILogger logger, DeliverPlaintext deliver)
    {
        _socket = socket;
        Options = options;
        _logger = logger;
        _deliver = deliver;
        if (!options.Certificate.HasPrivateKey)
        {
            throw new ArgumentException("The DTLS certificate has no private key.", nameof(options));
        }

        // BouncyCastle (its code, the cookie key, the server's key and chain) is loaded at the first
        // ClientHello: a server whose devices never use DTLS does not carry it (~5 MiB at start).
        _machinery = new Lazy<Machinery>(() => Machinery.Create(options), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>BouncyCastle's crypto provider, the cookie verifier and the server's credentials.</summary>
    private sealed class Machinery
    {
        private Machinery(BcTlsCrypto crypto, AsymmetricKeyParameter key, Certificate chain)
        {
            Crypto = crypto;
            Verifier = new DtlsVerifier(crypto);
            Key = key;
            Chain = chain;
        }

        public BcTlsCrypto Crypto { get; }

        public DtlsVerifier Verifier { get; }

        public AsymmetricKeyParameter Key { get; }

        public Certificate Chain { get; }

        public static Machinery Create(CoapDtlsOptions options)
        {
            var crypto = new BcTlsCrypto(new SecureRandom());
            using var key = (System.Security.Cryptography.AsymmetricAlgorithm?)options.Certificate.GetECDsaPrivateKey() ?? options.Certificate.GetRSAPrivateKey()
                ?? throw new InvalidOperationException("The DTLS certificate has no ECDSA or RSA private key.");
            return new Machinery(crypto, PrivateKeyFactory.CreateKey(key.ExportPkcs8PrivateKey()),
                new Certificate([.. new[] { options.Certificate }.Concat(options.Chain).Select(c => crypto.CreateCertificate(c.RawData))]));
        }
    }

    public CoapDtlsOptions Options { get; }

    /// <summary>Established sessions now.</summary>
    public int Sessions => _peers.Count(p => p.Value.Transport is not null);

    /// <summary>Full handshakes completed, abbreviated ones (resumptions), and handshakes that failed.</summary>
    public long Handshakes => Interlocked.Read(ref _handshakes);

    public long Resumptions => Interlocked.Read(ref _resumptions);

    public long FailedHandshakes => Interlocked.Read(ref _failedHandshakes);

    /// <summary>Datagrams dropped: not DTLS, no session and not a ClientHello, a verified ClientHello past the handshake or session bound.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    public (AsymmetricKeyParameter Key, Certificate Chain) ServerCredentials() => (_machinery.Value.Key, _machinery.Value.Chain);

    /// <summary>One datagram from <paramref name="remote"/>; called on the endpoint's receiving thread only.</summary>
    public void Receive(byte[] buffer, int length, IPEndPoint remote)
    {
        var datagram = buffer.AsSpan(0, length);
        var isClientHello = IsInitialClientHello(datagram);
        if (_peers.TryGetValue(remote, out var peer) && !(isClientHello && peer.Transport is not null))
        {
            peer.LastActive = Environment.TickCount64;
            if (peer.Transport is null)
            {
                peer.Arrived(datagram.ToArray()); // the handshake thread reads it
                return;
            }

            Decrypt(peer, datagram);
            return;
        }

        if (!isClientHello)
        {
            Interlocked.Increment(ref _dropped);
            return;
        }

        // A ClientHello without a valid cookie is answered with a HelloVerifyRequest (smaller than
        // the ClientHello: no amplification) and nothing is kept. With the cookie, the source has
        // shown it receives at its address: it gets a handshake (replacing a session it had, as a
        // device that rebooted starts over, RFC 6347 §4.2.8).
        var request = _machinery.Value.Verifier.VerifyRequest(remote.Serialize().Buffer.ToArray(), buffer, 0, length, new Sender(this, remote));
        if (request is null)
        {
            return;
        }

        if (Volatile.Read(ref _handshaking) >= Options.MaxHandshakes || (peer is null && _peers.Count >= Options.MaxSessions))
        {
            Interlocked.Increment(ref _dropped);
            return;
        }

        if (peer is not null)
        {
            Forget(peer, closedByClient: true); // the device started over
        }

        var fresh = new Peer(this, remote);
        _peers[remote] = fresh;
        Interlocked.Increment(ref _handshaking);
        var thread = new Thread(() => Handshake(fresh, request)) { IsBackground = true, Name = "dtls-handshake" };
        thread.Start();
    }

    /// <summary>Sends a CoAP datagram under the session with <paramref name="remote"/>; without one it is dropped.</summary>
    public void Send(byte[] datagram, IPEndPoint remote)
    {
        if (!_peers.TryGetValue(remote, out var peer) || peer.Transport is not { } transport)
        {
            return;
        }

        try
        {
            lock (peer)
            {
                transport.Send(datagram, 0, datagram.Length);
            }
        }
        catch (IOException e)
        {
            LogSendFailed(_logger, remote, e.Message);
            Forget(peer, closedByClient: false);
        }
    }

    /// <summary>Forgets the sessions silent for longer than the idle timeout, and the resumable sessions past their lifetime.</summary>
    public void Sweep()
    {
        var now = Environment.TickCount64;
        var idle = (long)Options.IdleTimeout.TotalMilliseconds;
        var handshake = (long)Options.HandshakeTimeout.TotalMilliseconds;
        foreach (var (_, peer) in _peers)
        {
            if (now - peer.LastActive > (peer.Transport is null ? 2 * handshake : idle))
            {
                Forget(peer, closedByClient: false);
            }
        }

        var lifetime = (long)Options.ResumptionLifetime.TotalMilliseconds;
        while (_resumableOrder.TryPeek(out var head) && (now - head.Kept.At > lifetime || _resumable.Count > Options.MaxResumableSessions)
            && _resumableOrder.TryDequeue(out head))
        {
            _resumable.TryRemove(new KeyValuePair<string, Kept>(head.Id, head.Kept));
        }

        foreach (var (key, at) in _loggedRefusals)
        {
            if (now - at > 60_000)
            {
                _loggedRefusals.TryRemove(key, out _);
            }
        }
    }

    /// <summary>Raised when an established session ends: closed by the client (true), or failed or idle (false).</summary>
    public event Action<IPEndPoint, bool>? SessionEnded;

    public Kept? Resumable(byte[]? sessionId) =>
        sessionId is { Length: > 0 } && _resumable.TryGetValue(Convert.ToHexString(sessionId), out var kept) ? kept : null;

    public void KeepForResumption(byte[] sessionId, TlsSession session, CoapPeer peer)
    {
        var id = Convert.ToHexString(sessionId);
        var kept = new Kept(session, peer, Environment.TickCount64);
        _resumable[id] = kept;
        _resumableOrder.Enqueue((id, kept));
    }

    private void Handshake(Peer peer, DtlsRequest request)
    {
        var server = new CoapDtlsServer(_machinery.Value.Crypto, this);
        try
        {
            var transport = new DtlsServerProtocol().Accept(server, peer, request);
            peer.Identity = server.Peer!;
            peer.Transport = transport;
            peer.LastActive = Environment.TickCount64;
            Interlocked.Increment(ref server.Resumed ? ref _resumptions : ref _handshakes);
            LogEstablished(_logger, peer.Remote, server.Peer!.PskIdentity ?? server.Peer.Certificate?.Subject ?? "?", server.Resumed);

            // Records that came while the handshake finished are read now.
            while (peer.TakeQueued() is { } early)
            {
                Decrypt(peer, early);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Whatever the handshake threw (a fatal alert, a timeout, a malformed message) ends
            // this source's handshake only; it never escapes the thread.
            Interlocked.Increment(ref _failedHandshakes);
            var reason = server.Refusal
                ?? (e is TlsTimeoutException && server.PskIdentity is { } identity
                    ? $"the handshake for PSK identity '{identity}' never completed: the client's Finished did not decrypt, so its key is most likely not that thing's DTLS token"
                    : e.Message);
            if (_loggedRefusals.TryAdd((peer.Remote.Address, reason), Environment.TickCount64))
            {
                LogHandshakeFailed(_logger, peer.Remote, reason);
            }

            Forget(peer, closedByClient: false);
        }
        finally
        {
            Interlocked.Decrement(ref _handshaking);
        }
    }

    private void Decrypt(Peer peer, ReadOnlySpan<byte> datagram)
    {
        int received;
        var plain = t_plain ??= new byte[MaxRecordBytes];
        try
        {
            lock (peer)
            {
                peer.Arrived(datagram.ToArray());
                received = peer.Transport!.Receive(plain, 0, plain.Length, 1);
            }
        }
        catch (Exception e) when (e is IOException or TlsFatalAlert or TlsFatalAlertReceived)
        {
            // After the client's close_notify the record layer reads on and finds the session closed.
            LogSessionFailed(_logger, peer.Remote, e.Message);
            Forget(peer, closedByClient: peer.Closed && e is not TlsFatalAlert);
            return;
        }

        if (peer.Closed)
        {
            Forget(peer, closedByClient: true); // its close_notify
            return;
        }

        if (received >= 0)
        {
            _deliver(plain.AsSpan(0, received), peer.Remote, peer.Identity!);
        }
    }

    private void Forget(Peer peer, bool closedByClient)
    {
        if (_peers.TryRemove(new KeyValuePair<IPEndPoint, Peer>(peer.Remote, peer)))
        {
            peer.Close();
            if (peer.Transport is not null)
            {
                SessionEnded?.Invoke(peer.Remote, closedByClient);
            }
        }
    }

    /// <summary>A DTLS 1.x handshake record of epoch 0 holding a ClientHello (RFC 6347 §4.1, §4.2.2).</summary>
    private static bool IsInitialClientHello(ReadOnlySpan<byte> datagram) =>
        datagram.Length >= 13 + 12 && datagram[0] == ContentType.handshake && datagram[1] == 0xFE
        && datagram[3] == 0 && datagram[4] == 0 && datagram[13] == HandshakeType.client_hello;

    private void SendRaw(ReadOnlySpan<byte> datagram, IPEndPoint remote)
    {
        try
        {
            _socket.SendTo(datagram, SocketFlags.None, remote);
        }
        catch (SocketException e)
        {
            LogSendSocketFailed(_logger, remote, e.SocketErrorCode);
        }
        catch (ObjectDisposedException)
        {
            // Stopping.
        }
    }

    /// <summary>Hands a decrypted CoAP datagram to the endpoint, with who sent it.</summary>
    public delegate void DeliverPlaintext(ReadOnlySpan<byte> datagram, IPEndPoint remote, CoapPeer peer);

    /// <summary>A session kept for resumption: BouncyCastle's session and who the full handshake proved the client to be.</summary>
    internal sealed record Kept(TlsSession Session, CoapPeer Peer, long At);

    /// <summary>Sends a HelloVerifyRequest to a source that has no session.</summary>
    private sealed class Sender(DtlsSessions owner, IPEndPoint remote) : DatagramSender
    {
        public int GetSendLimit() => 1400;

        public void Send(byte[] buf, int off, int len) => owner.SendRaw(buf.AsSpan(off, len), remote);

        public void Send(ReadOnlySpan<byte> buffer) => owner.SendRaw(buffer, remote);
    }

    /// <summary>
    /// One source's session, as BouncyCastle's datagram transport: during the handshake a
    /// blocking queue the handshake thread reads; once established, the one datagram just received,
    /// handed over on the receiving thread (no waiting).
    /// </summary>
    private sealed class Peer(DtlsSessions owner, IPEndPoint remote) : DatagramTransport
    {
        private readonly Queue<byte[]> _inbox = new();
        private readonly object _inboxLock = new();

        public IPEndPoint Remote => remote;

        public volatile DtlsTransport? Transport;

        public CoapPeer? Identity { get; set; }

        public long LastActive { get; set; } = Environment.TickCount64;

        public bool Closed { get; private set; }

        /// <summary>Datagrams wait here until read; a source that floods a handshake gets the rest dropped.</summary>
        public void Arrived(byte[] datagram)
        {
            lock (_inboxLock)
            {
                if (_inbox.Count < 64)
                {
                    _inbox.Enqueue(datagram);
                    Monitor.Pulse(_inboxLock);
                }
            }
        }

        public byte[]? TakeQueued()
        {
            lock (_inboxLock)
            {
                return _inbox.TryDequeue(out var datagram) ? datagram : null;
            }
        }

        public int GetReceiveLimit() => MaxRecordBytes;

        public int GetSendLimit() => 1400;

        public int Receive(byte[] buf, int off, int len, int waitMillis) => Receive(buf.AsSpan(off, len), waitMillis);

        /// <summary>
        /// The next datagram: during the handshake waiting up to <paramref name="waitMillis"/> for
        /// it (zero: without end, as BouncyCastle means it), once established never waiting.
        /// </summary>
        public int Receive(Span<byte> buffer, int waitMillis)
        {
            byte[]? datagram;
            lock (_inboxLock)
            {
                var deadline = Environment.TickCount64 + waitMillis;
                while (!_inbox.TryDequeue(out datagram))
                {
                    if (Closed)
                    {
                        throw new IOException("the session was closed");
                    }

                    var left = deadline - Environment.TickCount64;
                    if (Transport is not null || (waitMillis > 0 && left <= 0))
                    {
                        return -1;
                    }

                    Monitor.Wait(_inboxLock, waitMillis > 0 ? (int)left : Timeout.Infinite);
                }
            }

            var n = Math.Min(datagram.Length, buffer.Length);
            datagram.AsSpan(0, n).CopyTo(buffer);
            return n;
        }

        public void Send(byte[] buf, int off, int len) => owner.SendRaw(buf.AsSpan(off, len), remote);

        public void Send(ReadOnlySpan<byte> buffer) => owner.SendRaw(buffer, remote);

        public void Close()
        {
            lock (_inboxLock)
            {
                Closed = true;
                Monitor.PulseAll(_inboxLock);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "CoAP/DTLS: session with {Remote} established ({Identity}, resumed: {Resumed})")]
    private static partial void LogEstablished(ILogger logger, IPEndPoint remote, string identity, bool resumed);

    [LoggerMessage(Level = LogLevel.Warning, Message = "CoAP/DTLS: handshake with {Remote} refused: {Reason} (logged once a minute per source and reason)")]
    private static partial void LogHandshakeFailed(ILogger logger, IPEndPoint remote, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "CoAP/DTLS: session with {Remote} ended: {Reason}")]
    private static partial void LogSessionFailed(ILogger logger, IPEndPoint remote, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "CoAP/DTLS: sending to {Remote} failed ({Error})")]
    private static partial void LogSendFailed(ILogger logger, IPEndPoint remote, string error);

    [LoggerMessage(Level = LogLevel.Debug, Message = "CoAP/DTLS: sending to {Remote} failed ({Error})")]
    private static partial void LogSendSocketFailed(ILogger logger, IPEndPoint remote, SocketError error);
}
