using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;

namespace Trellis.Broker.Hosting;

/// <summary>
/// The plain-TCP MQTT listener on raw sockets (TLS and WebSockets go through Kestrel). Owning this
/// path keeps an idle connection small (see docs/architecture.md, "memory per connection"). On Linux
/// its connections are served by <see cref="BrokerOptions.EventLoops"/> epoll loops of its own.
/// </summary>
public sealed class MqttSocketListener(MqttBroker broker, IPEndPoint endpoint) : IHostedService, IDisposable
{
    // 10 000 clients may connect at once after a broker restart.
    private const int Backlog = 4096;

    /// <summary>128 KiB: far above the loopback and LAN bandwidth-delay product at 500k msg/s.</summary>
    private const int ReceiveBufferBytes = 128 * 1024;
    private readonly CancellationTokenSource _stopping = new();
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

        _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _listener.Bind(endpoint);
        _listener.Listen(Backlog);
        var loops = Native.EventLoopsSupported ? broker.Options.EventLoops : 0;
        _loops = Enumerable.Range(0, loops)
            .Select(i => new EventLoop($"MQTT loop {i}", e => broker.Logger.ConnectionFault("-", "event loop", e.GetType().Name + ": " + e.Message)))
            .ToArray();
        _accepting = AcceptLoopAsync(_stopping.Token);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        _listener?.Dispose();
        if (_accepting is not null)
        {
            await _accepting;
        }
    }

    public void Dispose()
    {
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

            socket.NoDelay = true;

            // A fixed receive buffer turns off the kernel's autotuning (up to 32 MiB per socket on
            // Linux): back-pressure then reaches an unthrottled publisher within ~128 KiB instead of
            // tens of MiB, and kernel memory per connection stays bounded.
            socket.ReceiveBufferSize = ReceiveBufferBytes;
            Serve(socket);
        }
    }

    private void Serve(Socket socket)
    {
        IMqttTransport transport = _loops.Length > 0
            ? new LoopTransport(socket, _loops[(uint)Interlocked.Increment(ref _nextLoop) % (uint)_loops.Length])
            : new SocketTransport(socket);
        string remote;
        try
        {
            remote = socket.RemoteEndPoint is IPEndPoint ip ? ip.Address.ToString() : "unknown";
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
}
