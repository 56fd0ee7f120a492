using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;

namespace Trellis.Broker.Hosting;

/// <summary>
/// An MQTT listener on raw sockets: plain TCP, or TLS when given a <see cref="TlsServerContext"/>
/// (WebSockets go through Kestrel). Owning this path keeps an idle connection small and a TLS
/// connect cheap (see docs/architecture.md, "memory per connection" and "TLS"). On Linux its
/// connections are served by <see cref="BrokerOptions.EventLoops"/> epoll loops of its own; TLS
/// needs them.
/// </summary>
public sealed class MqttSocketListener(MqttBroker broker, IPEndPoint endpoint, TlsServerContext? tls = null, string? flag = null) : IHostedService, IDisposable
{
    // 10 000 clients may connect at once after a broker restart.
    private const int Backlog = 4096;

    /// <summary>128 KiB: far above the loopback and LAN bandwidth-delay product at 500k msg/s.</summary>
    private const int ReceiveBufferBytes = 128 * 1024;
    /// <summary>Connections one wake-up of a loop accepts before it serves its other events.</summary>
    private const int AcceptBatch = 64;

    /// <summary>How long accepting pauses when the process is out of descriptors (or memory) for new connections.</summary>
    private static readonly TimeSpan AcceptPause = TimeSpan.FromMilliseconds(100);

    private readonly CancellationTokenSource _stopping = new();
    private Timer? _resume;
    private volatile bool _stopped;
    private EventLoop[] _loops = [];
    private int _nextLoop;
    private Socket? _listener;
    private Task? _accepting;
    private string? _name;

    /// <summary>The bound port (the real one when configured with port 0).</summary>
    public int Port => (_listener?.LocalEndPoint as IPEndPoint)?.Port ?? 0;

    /// <summary>The epoll loops serving the listener's connections; 0 when the .NET socket engine serves them.</summary>
    public int EventLoops => _loops.Length;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        if (endpoint.Address.Equals(IPAddress.IPv6Any))
        {
            _listener.DualMode = true;
        }

        // No ReuseAddress: on Linux .NET maps it to SO_REUSEPORT as well, which let a second process
        // bind the same port and take a share of the connections. .NET already sets SO_REUSEADDR
        // on Unix listeners, so a restart still binds while old connections sit in TIME_WAIT.
        try
        {
            _listener.Bind(endpoint);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            _listener.Dispose();
            throw new InvalidOperationException($"TCP port {endpoint} is in use by another program (another trellis serve or MQTT broker?): give {flag ?? "the listener"} another HOST:PORT, or stop that program.", e);
        }

        _listener.Listen(Backlog);
        var loops = Native.EventLoopsSupported ? broker.Options.EventLoops : 0;
        if (tls is not null && loops == 0)
        {
            _listener.Dispose();
            throw new InvalidOperationException("MQTT over TLS on the broker's own listener needs its event loops (Linux, --mqtt-threads above 0).");
        }
        _loops = Enumerable.Range(0, loops)
            .Select(i => new EventLoop($"MQTT loop {i}", e => broker.Logger.ConnectionFault("-", "event loop", e.GetType().Name + ": " + e.Message)))
            .ToArray();
        if (_loops.Length > 0)
        {
            // The loops accept themselves: no socket-engine thread, no thread-pool hop per connect.
            _listener.Blocking = false;
            Watch();
        }
        else
        {
            _accepting = AcceptLoopAsync(_stopping.Token);
        }

        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopped = true;
        await _stopping.CancelAsync();
        Unwatch();
        _listener?.Dispose();
        if (_accepting is not null)
        {
            await _accepting;
        }
    }

    public void Dispose()
    {
        _stopped = true;
        _resume?.Dispose();
        _listener?.Dispose();
        foreach (var loop in _loops)
        {
            loop.Dispose();
        }

        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener!.AcceptAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                // A connection reset before it was accepted: keep accepting.
                continue;
            }

            Serve(socket);
        }
    }

    private void Watch()
    {
        var fd = _listener!.SafeHandle.DangerousGetHandle();
        foreach (var loop in _loops)
        {
            loop.WatchListener(fd, AcceptPending);
        }
    }

    private void Unwatch()
    {
        if (_listener is null || _loops.Length == 0)
        {
            return;
        }

        var added = false;
        try
        {
            _listener.SafeHandle.DangerousAddRef(ref added);
            var fd = _listener.SafeHandle.DangerousGetHandle();
            foreach (var loop in _loops)
            {
                loop.Forget(fd);
            }
        }
        catch (ObjectDisposedException)
        {
        }
        finally
        {
            if (added)
            {
                _listener.SafeHandle.DangerousRelease();
            }
        }
    }

    /// <summary>On a loop thread: connections are pending. Accepts a batch and serves each.</summary>
    private void AcceptPending()
    {
        var listener = _listener;
        if (listener is null || _stopped)
        {
            return;
        }

        var added = false;
        try
        {
            listener.SafeHandle.DangerousAddRef(ref added);
            var fd = listener.SafeHandle.DangerousGetHandle();
            for (var i = 0; i < AcceptBatch && !_stopped; i++)
            {
                var client = Native.Accept(fd);
                if (client >= 0)
                {
                    ServeOnLoop(new SafeSocketHandle(client, ownsHandle: true));
                    continue;
                }

                var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
                if (errno is Native.EINTR or Native.ECONNABORTED)
                {
                    continue;
                }

                if (errno is Native.EMFILE or Native.ENFILE or Native.ENOBUFS or Native.ENOMEM)
                {
                    // Out of descriptors: stop watching for a moment instead of spinning on a socket
                    // that stays readable, and say what to raise.
                    broker.Logger.ConnectionFault("-", "listener", $"cannot accept connections on {_name ?? "port " + Port}: {(errno is Native.EMFILE or Native.ENFILE ? "out of file descriptors (raise the limit: ulimit -n)" : "out of memory")}; accepting again in {AcceptPause.TotalMilliseconds:0} ms");
                    Unwatch();
                    _resume?.Dispose();
                    _resume = new Timer(_ => { if (!_stopped) { Watch(); } }, null, AcceptPause, Timeout.InfiniteTimeSpan);
                }

                return; // EAGAIN: nothing more pending
            }
        }
        catch (ObjectDisposedException)
        {
            // stopping
        }
        finally
        {
            if (added)
            {
                listener.SafeHandle.DangerousRelease();
            }
        }
    }

    /// <summary>The client's address for logs and limits (the loops' sockets are always IP).</summary>
    private static string RemoteAddress(Socket socket) => Native.PeerAddress(socket.SafeHandle.DangerousGetHandle()) ?? "unknown";

    /// <summary>
    /// A connection accepted by an event loop: served on the loops from its descriptor alone (no
    /// <see cref="Socket"/> object until one is needed; see <see cref="LoopTransport"/>).
    /// </summary>
    private void ServeOnLoop(SafeSocketHandle handle)
    {
        var fd = handle.DangerousGetHandle();

        // A fixed receive buffer turns off the kernel's autotuning (up to 32 MiB per socket on
        // Linux): back-pressure then reaches an unthrottled publisher within ~128 KiB instead of
        // tens of MiB, and kernel memory per connection stays bounded.
        if (!Native.SetOption(fd, Native.IpProtoTcp, Native.TcpNoDelay, 1) || !Native.SetOption(fd, Native.SolSocket, Native.SoRcvBuf, ReceiveBufferBytes))
        {
            handle.Dispose(); // reset before it was served
            return;
        }

        if (tls is not null)
        {
            ServeTls(handle, tls);
            return;
        }

        var transport = new LoopTransport(handle, _loops[(uint)Interlocked.Increment(ref _nextLoop) % (uint)_loops.Length]);
        string remote;
        try
        {
            remote = Native.PeerAddress(fd) ?? "unknown";
            transport.Start();
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            // Reset before it was served, or the loop refused it: this connection only, never the accept loop.
            transport.Abort();
            return;
        }

        // The connection disposes its transport when it ends (a graceful close); nothing here waits for it.
        _ = broker.ServeConnectionAsync(transport, null, isTls: false, remote, _name ??= $"mqtt:{Port}");
    }

    /// <summary>A connection accepted by the runtime's socket engine (no event loops: Broker:EventLoops = 0; plain MQTT only, since TLS needs the loops).</summary>
    private void Serve(Socket socket)
    {
        try
        {
            socket.NoDelay = true;

            // A fixed receive buffer turns off the kernel's autotuning (up to 32 MiB per socket on
            // Linux): back-pressure then reaches an unthrottled publisher within ~128 KiB instead of
            // tens of MiB, and kernel memory per connection stays bounded.
            socket.ReceiveBufferSize = ReceiveBufferBytes;
        }
        catch (SocketException)
        {
            socket.Dispose(); // reset before it was served
            return;
        }

        IMqttTransport transport = new SocketTransport(socket);
        string remote;
        try
        {
            remote = RemoteAddress(socket);
            transport.Start();
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            // Reset before it was served, or the loop refused it: this connection only, never the accept loop.
            transport.Abort();
            return;
        }

        // The connection disposes its transport when it ends (a graceful close); nothing here waits for it.
        _ = broker.ServeConnectionAsync(transport, null, isTls: false, remote, _name ??= $"mqtt:{Port}");
    }

    /// <summary>
    /// A TLS connection: the loop runs its handshake, and the broker starts on it once the client's
    /// certificate is known (or not at all: a refused handshake is logged and closed).
    /// </summary>
    private void ServeTls(SafeSocketHandle socket, TlsServerContext context)
    {
        LoopTransport? transport = null;
        try
        {
            var remote = Native.PeerAddress(socket.DangerousGetHandle()) ?? "unknown";
            var name = _name ??= $"mqtts:{Port}";
            var link = new TlsLink(
                new TlsSession(context),
                TimeSpan.FromSeconds(broker.Options.ConnectTimeoutSeconds),
                (secured, certificate) => _ = broker.ServeConnectionAsync(secured, certificate, isTls: true, remote, name),
                reason => broker.TlsRefusals.Refused(remote, name, reason));
            transport = new LoopTransport(socket, _loops[(uint)Interlocked.Increment(ref _nextLoop) % (uint)_loops.Length], link);
            transport.Start();
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            if (transport is null)
            {
                socket.Dispose();
            }
            else
            {
                transport.Abort();
            }
        }
    }
}
