using System.Net;
using System.Net.Sockets;
using Org.BouncyCastle.Security;
using Org.BouncyCastle.Tls;
using Org.BouncyCastle.Tls.Crypto.Impl.BC;

namespace Trellis.LoadGen;

/// <summary>
/// One simulated constrained device speaking DTLS 1.2 with a pre-shared key (BouncyCastle's
/// client), over its own UDP socket. Its datagrams are read by an async loop and handed to the
/// DTLS record layer: the handshake (on a thread of its own) waits for them, and once established
/// each one is decrypted as it arrives and passed to <see cref="Received"/>.
/// </summary>
internal sealed class DtlsDevice : DatagramTransport, IDisposable
{
    private static readonly BcTlsCrypto SharedCrypto = new(new SecureRandom());
    private readonly Socket _socket;
    private readonly Queue<byte[]> _inbox = new();
    private readonly object _gate = new();
    private readonly string _identity;
    private readonly byte[] _key;
    private DtlsTransport? _transport;
    private bool _closed;

    public DtlsDevice(IPEndPoint server, string identity, byte[] key)
    {
        _identity = identity;
        _key = key;
        _socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        _socket.Connect(server);
    }

    /// <summary>Each decrypted datagram, on the reading loop.</summary>
    public Action<ReadOnlyMemory<byte>>? Received { get; set; }

    /// <summary>The session to offer for resumption in the next handshake, and the one the last handshake made.</summary>
    public TlsSession? Session { get; set; }

    public int CipherSuite { get; private set; }

    public bool Resumed { get; private set; }

    /// <summary>Reads datagrams until the device is disposed.</summary>
    public async Task ReadAsync(CancellationToken ct)
    {
        var buffer = new byte[65_536];
        var plain = new byte[16_384];
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var n = await _socket.ReceiveAsync(buffer, SocketFlags.None, ct);
                lock (_gate)
                {
                    _inbox.Enqueue(buffer.AsSpan(0, n).ToArray());
                    Monitor.Pulse(_gate);
                }

                if (_transport is { } transport)
                {
                    int got;
                    lock (transport)
                    {
                        got = transport.Receive(plain, 0, plain.Length, 1);
                    }

                    if (got >= 0)
                    {
                        Received?.Invoke(plain.AsMemory(0, got));
                    }
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException or IOException)
        {
        }
    }

    /// <summary>The handshake, blocking until it completes (or throws).</summary>
    public void Handshake()
    {
        var client = new Client(this);
        var transport = new DtlsClientProtocol().Connect(client, this);
        Session = client.Context.Session;
        CipherSuite = client.Context.SecurityParameters.CipherSuite;
        Resumed = client.Context.SecurityParameters.IsResumedSession;
        _transport = transport;
    }

    public void Send(byte[] datagram)
    {
        var transport = _transport ?? throw new InvalidOperationException("no session");
        lock (transport)
        {
            transport.Send(datagram, 0, datagram.Length);
        }
    }

    public int GetReceiveLimit() => 16_384 + 2_048;

    public int GetSendLimit() => 1_400;

    public int Receive(byte[] buf, int off, int len, int waitMillis) => Receive(buf.AsSpan(off, len), waitMillis);

    public int Receive(Span<byte> buffer, int waitMillis)
    {
        byte[]? datagram;
        lock (_gate)
        {
            var deadline = Environment.TickCount64 + waitMillis;
            while (!_inbox.TryDequeue(out datagram))
            {
                var left = deadline - Environment.TickCount64;
                if (_closed || _transport is not null || (waitMillis > 0 && left <= 0))
                {
                    return -1;
                }

                Monitor.Wait(_gate, waitMillis > 0 ? (int)left : Timeout.Infinite);
            }
        }

        datagram.AsSpan(0, Math.Min(datagram.Length, buffer.Length)).CopyTo(buffer);
        return Math.Min(datagram.Length, buffer.Length);
    }

    public void Send(byte[] buf, int off, int len) => _socket.Send(buf, off, len, SocketFlags.None);

    public void Send(ReadOnlySpan<byte> buffer) => _socket.Send(buffer, SocketFlags.None);

    public void Close()
    {
        lock (_gate)
        {
            _closed = true;
            Monitor.PulseAll(_gate);
        }
    }

    public void Dispose()
    {
        Close();
        _socket.Dispose();
    }

    /// <summary>PSK only, with the suite RFC 7925 makes mandatory for constrained devices first.</summary>
    private sealed class Client(DtlsDevice device) : PskTlsClient(SharedCrypto, new BasicTlsPskIdentity(device._identity, device._key))
    {
        public TlsClientContext Context => m_context;

        protected override ProtocolVersion[] GetSupportedVersions() => ProtocolVersion.DTLSv12.Only();

        protected override int[] GetSupportedCipherSuites() =>
            TlsUtilities.GetSupportedCipherSuites(Crypto, [Org.BouncyCastle.Tls.CipherSuite.TLS_PSK_WITH_AES_128_CCM_8, Org.BouncyCastle.Tls.CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256]);

        public override TlsSession? GetSessionToResume() => device.Session;
    }
}
