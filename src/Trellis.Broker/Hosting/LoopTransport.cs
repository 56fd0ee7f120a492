using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Trellis.Broker.Hosting;

/// <summary>
/// A TCP connection served by an <see cref="EventLoop"/>. When the socket becomes readable, the loop
/// thread reads it into the input buffer and its reader (the broker's read loop) runs inline on
/// that thread: a connection that sends a message at a time costs one <c>recv</c>, no thread hop.
/// A connection with more to read than one receive takes (a publisher streaming batches) is handed to
/// the thread pool until its socket is empty, so the loop stays free for the light ones (a
/// subscriber's acknowledgements must not wait behind a publisher's stream). Writes go straight to
/// the socket from whichever thread flushes, and only wait (through the runtime's socket engine) when
/// the socket's send buffer is full. An idle connection holds no buffer.
/// With a <see cref="TlsLink"/> the same loop carries TLS: what a receive brings goes through the
/// connection's OpenSSL session into the input buffer, and a flush encrypts before it sends.
/// </summary>
internal sealed partial class LoopTransport : IMqttTransport, IThreadPoolWorkItem
{
    /// <summary>Read size per receive call; the pipe's segments are this size.</summary>
    private const int ReadSize = 4096;

    /// <summary>Receive size on a TLS connection: one full record (16 KiB of data plus its framing).</summary>
    private const int CipherReadSize = 16 * 1024 + 256;

    /// <summary>Bytes read before the broker is given them (a flush) and the thread is offered to others.</summary>
    private const int PassBytes = 64 * 1024;

    // Same back-pressure as SocketTransport: past 256 KiB unread, reading this socket stops.
    private const int PauseBytes = 256 * 1024;
    private const int ResumeBytes = 128 * 1024;

    /// <summary>Guards the one-time creation of a transport's <see cref="Socket"/> (rare: see <see cref="Socket"/>).</summary>
    private static readonly Lock SocketCreation = new();

    private readonly SafeSocketHandle _handle;
    private readonly EventLoop _loop;
    private Socket? _socket;
    private readonly InputBuffer _input = new(ReadSize, PauseBytes, ResumeBytes);
    private readonly TlsLink? _tls;
    private Action? _flushCompleted; // created on the first pause: most connections never pause
    private ValueTask<FlushResult> _pendingFlush;

    /// <summary>
    /// Who reads: 0 nobody (the loop starts a reader on the next event), 1 a reader owns the input
    /// buffer's writer, 2 a reader owns it and was asked to look again. Exactly one thread reads at a
    /// time; ownership moves between the loop and the thread pool with the work.
    /// </summary>
    private int _readState;
    private bool _inputDone;
    private volatile bool _peerClosed;
    private volatile bool _closeRequested;
    private volatile bool _peerDisconnected;

    [ThreadStatic]
    private static byte[]? t_cipher;

    /// <summary>
    /// Serves an accepted descriptor on <paramref name="loop"/> (through <paramref name="tls"/> when
    /// given). The loops read and write the descriptor themselves, so no
    /// <see cref="System.Net.Sockets.Socket"/> is made for it (with its two end points, ~260 bytes per
    /// idle connection) until one is needed.
    /// </summary>
    public LoopTransport(SafeSocketHandle handle, EventLoop loop, TlsLink? tls = null)
    {
        _handle = handle;
        _loop = loop;
        _tls = tls;
        Fd = handle.DangerousGetHandle();
    }

    /// <summary>
    /// The runtime's socket over the descriptor, made the first time it is needed: to wait through
    /// a full send buffer, or for a lingering close. It takes over the handle (disposing it closes it).
    /// </summary>
    private Socket Socket
    {
        get
        {
            if (Volatile.Read(ref _socket) is { } made)
            {
                return made;
            }

            lock (SocketCreation)
            {
                return _socket ??= new Socket(_handle);
            }
        }
    }

    /// <summary>Closes the descriptor: through the socket when one was made, else the handle itself.</summary>
    private void DisposeSocket()
    {
        lock (SocketCreation)
        {
            if (_socket is { } socket)
            {
                socket.Dispose();
            }
            else
            {
                _handle.Dispose();
            }
        }
    }

    private enum Pass
    {
        /// <summary>The socket is empty.</summary>
        Empty,

        /// <summary>There may be more to read: continue on the thread pool.</summary>
        More,

        /// <summary>The broker is not taking data; reading resumes when it catches up.</summary>
        Paused,

        /// <summary>The input is over.</summary>
        Ended,
    }

    public PipeReader Input => _input;

    public PipeWriter Output => this;

    internal nint Fd { get; }

    internal ulong Token { get; set; }

    public void Start()
    {
        _tls?.StartDeadline(this);
        _loop.Register(this);
    }

    /// <summary>The TLS handshake did not finish in time: the connection goes, as a refused handshake's would.</summary>
    internal void HandshakeExpired()
    {
        if (_tls is { Session.Secured: false } tls)
        {
            tls.Failed($"no completed handshake within {tls.HandshakeTimeout.TotalSeconds:0} s (Broker:ConnectTimeoutSeconds)");
            Abort();
        }
    }

    /// <summary>Hard close: reset the connection, dropping anything unsent.</summary>
    public void Abort()
    {
        var added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            Native.SetResetOnClose(Fd);
        }
        catch (ObjectDisposedException)
        {
        }
        finally
        {
            if (added)
            {
                _handle.DangerousRelease();
            }
        }

        Close(shutdown: false);
    }

    public void PeerDisconnected() => _peerDisconnected = true;

    /// <summary>Graceful close after the broker finished: what was written is sent, then FIN.</summary>
    public ValueTask DisposeAsync()
    {
        Close(shutdown: true);
        return ValueTask.CompletedTask;
    }

    /// <summary>On the loop thread: the socket is readable, or the peer closed (<paramref name="events"/> says).</summary>
    internal void OnReadable(uint events)
    {
        if ((events & (Native.EPOLLRDHUP | Native.EPOLLHUP | Native.EPOLLERR)) != 0)
        {
            _peerClosed = true;
        }

        if (Interlocked.Exchange(ref _readState, 2) == 0)
        {
            Drain(onLoop: true);
        }
    }

    void IThreadPoolWorkItem.Execute() => Drain(onLoop: false);

    /// <summary>Reads while this thread owns the input; releases it only when nobody asked to look again.</summary>
    private void Drain(bool onLoop)
    {
        while (true)
        {
            Volatile.Write(ref _readState, 1);
            switch (ReadPass(onLoop))
            {
                case Pass.More:
                    // Still owned: a pool thread continues (and yields between passes to other work).
                    ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
                    return;
                case Pass.Paused:
                    return; // still owned: OnFlushCompleted continues
                case Pass.Ended:
                    EndInput();
                    return; // owned for good: later events start no reader
                default:
                    if (Interlocked.CompareExchange(ref _readState, 0, 1) == 1)
                    {
                        return;
                    }

                    break; // asked to look again (new data, or a close)
            }
        }
    }

    /// <summary>
    /// Reads the socket until it is empty, a receive's worth is left for the pool, or the input
    /// ends. Plain TCP is received straight into the input buffer; TLS into a per-thread buffer whose
    /// contents go through the session (<see cref="Decrypt"/>) into the input buffer.
    /// </summary>
    private unsafe Pass ReadPass(bool onLoop)
    {
        if (_closeRequested)
        {
            return Pass.Ended;
        }

        var writer = _input;
        var received = 0;
        var delivered = 0;
        var ended = false;
        var more = false;
        var handleAdded = false;
        try
        {
            _handle.DangerousAddRef(ref handleAdded);
            while (true)
            {
                var target = _tls is null ? writer.GetMemory(ReadSize) : t_cipher ??= GC.AllocateUninitializedArray<byte>(CipherReadSize, pinned: true);
                nint n;
                fixed (byte* pointer = target.Span)
                {
                    n = Native.Recv(Fd, pointer, target.Length);
                }

                if (n > 0)
                {
                    received += (int)n;
                    if (_tls is null)
                    {
                        writer.Advance((int)n);
                        delivered += (int)n;
                    }
                    else if (!_tls.Session.Feed(target.Span[..(int)n]) || !Decrypt(ref delivered))
                    {
                        ended = true;
                        break;
                    }

                    // A short read emptied the socket; with edge-triggered epoll the next arrival raises a
                    // new event, so there is no need for another call that would only say EAGAIN. Not
                    // after the peer's close was reported: no further event comes for that.
                    if (n < target.Length && !_peerClosed)
                    {
                        break;
                    }

                    if (n == target.Length && (onLoop || received >= PassBytes))
                    {
                        // More than one receive's worth: let the pool read the rest (from the loop), or
                        // give the broker this much and the pool thread to others (on the pool).
                        more = true;
                        break;
                    }

                    continue;
                }

                if (n == 0)
                {
                    ended = true; // the peer closed
                    break;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno == Native.EINTR)
                {
                    continue;
                }

                ended = errno != Native.EAGAIN; // a reset or other socket error ends the input
                break;
            }
        }
        catch (ObjectDisposedException)
        {
            ended = true; // closed by Abort on another thread
        }
        finally
        {
            if (handleAdded)
            {
                _handle.DangerousRelease();
            }
        }

        if (ended && _tls is { Session.Secured: false } tls)
        {
            // Nobody else owns a connection whose handshake failed: close it here (what OpenSSL had
            // to say, an alert, went out already), and say why once.
            tls.Failed(received == 0 ? "the client closed the connection before the handshake" : "the client closed the connection during the handshake");
            Close(shutdown: true);
        }

        return Deliver(delivered > 0, ended, more, onLoop);
    }

    /// <summary>
    /// The end of a pass: what was written to the input buffer goes to the broker (unless the pool
    /// continues from the loop), and the pass says what comes next.
    /// </summary>
    private Pass Deliver(bool wrote, bool ended, bool more, bool onLoop)
    {
        var writer = _input;
        if (more && onLoop)
        {
            return Pass.More; // the pool thread hands this data to the broker with the rest
        }

        if (!wrote)
        {
            writer.ReleaseWriter(); // an idle connection keeps no buffer
        }
        else
        {
            // The broker's read loop runs inside this call (inline reader scheduler).
            var flush = writer.FlushAsync();
            if (!flush.IsCompleted)
            {
                // The broker is not taking data (a congested subscriber, a held publish): stop reading
                // this socket until it catches up, so TCP slows the sender down.
                _pendingFlush = flush;
                flush.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_flushCompleted ??= OnFlushCompleted);
                return Pass.Paused;
            }

#pragma warning disable VSTHRD002 // the flush has completed: Result does not wait
            ended |= flush.Result.IsCompleted; // the broker stopped reading
#pragma warning restore VSTHRD002
        }

        return ended || _closeRequested ? Pass.Ended : more ? Pass.More : Pass.Empty;
    }

    /// <summary>
    /// Runs what was fed through the TLS session: the handshake until it is done (its answers sent
    /// at once; the broker starts on the connection when it completes), then the plaintext into the
    /// input buffer. False when the input is over.
    /// </summary>
    private bool Decrypt(ref int delivered)
    {
        var tls = _tls!;
        var session = tls.Session;
        if (!session.Secured)
        {
            var step = session.Handshake(out var failure);
            if (!SendTlsOutput())
            {
                step = TlsSession.Step.Failed;
                failure ??= "the client does not read the handshake";
            }

            if (step == TlsSession.Step.Failed)
            {
                tls.Failed(failure ?? "handshake failed");
                return false;
            }

            if (step == TlsSession.Step.More)
            {
                return true;
            }

            tls.Secured(this);
        }

        var writer = _input;
        while (true)
        {
            var memory = writer.GetMemory(ReadSize);
            var n = session.Read(memory.Span, out _);
            if (n > 0)
            {
                writer.Advance(n);
                delivered += n;
                continue;
            }

            // Whatever the session answered on its own (a key update) leaves with the next write.
            return n == 0;
        }
    }

    /// <summary>Sends what the TLS session wrote by itself (a handshake flight, an alert); false if the socket did not take it all.</summary>
    private bool SendTlsOutput()
    {
        var output = _tls!.Session.TakeOutput(out var length);
        if (output is null)
        {
            return true;
        }

        try
        {
            return TrySend(output.AsSpan(0, length)) == length;
        }
        catch (IOException)
        {
            return false;
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(output);
        }
    }

    /// <summary>A paused flush finished, on the thread that let the broker catch up: read on from there.</summary>
    private void OnFlushCompleted()
    {
        bool readerGone;
        try
        {
#pragma warning disable VSTHRD002 // called when the flush has completed: Result does not wait
            var result = _pendingFlush.Result;
#pragma warning restore VSTHRD002
            readerGone = result.IsCompleted || result.IsCanceled;
        }
        catch (InvalidOperationException)
        {
            readerGone = true;
        }

        _pendingFlush = default;
        if (readerGone)
        {
            EndInput();
            return;
        }

        // Events that came while paused found the input owned and only asked for another look (a
        // close among them set _peerClosed): this pass reads what they announced.
        Drain(onLoop: false);
    }

    /// <summary>No more input: the broker's read loop sees the end of the stream. Only by the owner of the input.</summary>
    private void EndInput()
    {
        if (_inputDone)
        {
            return;
        }

        _inputDone = true;
        _loop.Unregister(this);
        var added = false;
        try
        {
            // Only while the descriptor is certainly still this socket's (closing it removes it
            // anyway; a graceful close whose client had hung up closed it already).
            if (!_handle.IsClosed)
            {
                _handle.DangerousAddRef(ref added);
                _loop.Forget(Fd);
            }
        }
        catch (ObjectDisposedException)
        {
        }
        finally
        {
            if (added)
            {
                _handle.DangerousRelease();
            }
        }

        _input.CompleteWriter();
    }

    private void Close(bool shutdown)
    {
        _closeRequested = true;
        _loop.Unregister(this);

        // Nobody reading: end the input here. Otherwise the reader ends it on its next pass (a
        // paused reader ends when the broker completes its side of the pipe, or never needs to).
        if (Interlocked.Exchange(ref _readState, 2) == 0)
        {
            EndInput();
        }

        if (_tls is not null)
        {
            if (shutdown && !_peerClosed && !_inputDone && Quiet)
            {
                // close_notify first, so the client reads a clean end of the TLS stream.
                _tls.Session.Shutdown();
                _ = SendTlsOutput();
            }

            _tls.Dispose();
        }

        if (shutdown && !_peerDisconnected)
        {
            // FIN, then what the client still sends is read and dropped for a moment, so that it
            // reads our last packet instead of a reset (see LingeringClose). Not after the client's
            // own DISCONNECT: it is closing too and reads nothing more from us.
            Socket lingering;
            try
            {
                lingering = Socket;
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                DisposeSocket(); // reset already: nothing to linger for
                return;
            }

            LingeringClose.Start(lingering);
            return;
        }

        DisposeSocket();
    }

    /// <summary>Sends what the socket takes now, from the calling thread; returns the number of bytes sent.</summary>
    private unsafe int TrySend(ReadOnlySpan<byte> data)
    {
        var added = false;
        var total = 0;
        try
        {
            _handle.DangerousAddRef(ref added);
            fixed (byte* start = data)
            {
                while (total < data.Length)
                {
                    var n = Native.Send(Fd, start + total, data.Length - total);
                    if (n > 0)
                    {
                        total += (int)n;
                        continue;
                    }

                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == Native.EINTR)
                    {
                        continue;
                    }

                    if (errno == Native.EAGAIN)
                    {
                        return total;
                    }

                    throw new IOException($"send failed: errno {errno}", new SocketException(errno));
                }
            }
        }
        catch (ObjectDisposedException e)
        {
            throw new IOException("the connection is closed", e);
        }
        finally
        {
            if (added)
            {
                _handle.DangerousRelease();
            }
        }

        return total;
    }
}
