using System.Security.Cryptography.X509Certificates;

namespace Trellis.Broker.Hosting;

/// <summary>
/// What a <see cref="LoopTransport"/> needs to speak TLS: its session, what starts the broker on
/// the connection once the handshake is done (with the client's certificate), what reports a failed
/// handshake, and the deadline a handshake must meet (a client that opens the port and says
/// nothing holds a descriptor until then, never longer).
/// </summary>
internal sealed class TlsLink(TlsSession session, TimeSpan handshakeTimeout, Action<LoopTransport, X509Certificate2?> onSecured, Action<string> onFailed) : IDisposable
{
    private Timer? _deadline;
    private int _failed;

    public TlsSession Session => session;

    public TimeSpan HandshakeTimeout => handshakeTimeout;

    /// <summary>Closes the transport unless its handshake completes within <see cref="HandshakeTimeout"/>.</summary>
    public void StartDeadline(LoopTransport transport) =>
        _deadline = new Timer(static state => ((LoopTransport)state!).HandshakeExpired(), transport, handshakeTimeout, Timeout.InfiniteTimeSpan);

    public void Secured(LoopTransport transport)
    {
        _deadline?.Dispose();
        onSecured(transport, session.PeerCertificate());
    }

    /// <summary>Reports the handshake's failure, once (the first reason is the one that counts).</summary>
    public void Failed(string reason)
    {
        _deadline?.Dispose();
        if (Interlocked.Exchange(ref _failed, 1) == 0)
        {
            onFailed(reason);
        }
    }

    public void Dispose()
    {
        _deadline?.Dispose();
        session.Dispose();
    }
}
