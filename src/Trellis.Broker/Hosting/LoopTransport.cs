using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Trellis.Broker.Hosting;

/// <summary>
/// A TCP connection served by an <see cref="EventLoop"/>: the loop thread reads the socket into the
/// input pipe, whose reader (the broker's read loop) then runs inline on that thread. Writes go
/// straight to the socket from whichever thread flushes, and only wait (through the runtime's
/// socket engine) when the socket's send buffer is full. An idle connection holds no buffer.
/// </summary>
internal sealed class LoopTransport : IMqttTransport
{
    /// <summary>Read size per receive call; the pipe's segments are this size.</summary>
    private const int ReadSize = 4096;

    // Same back-pressure as SocketTransport: past 256 KiB unread the loop stops reading this socket.
    private static readonly PipeOptions InputOptions = new(
        readerScheduler: PipeScheduler.Inline,
        pauseWriterThreshold: 256 * 1024,
        resumeWriterThreshold: 128 * 1024,
        minimumSegmentSize: ReadSize,
        useSynchronizationContext: false);

    private readonly Socket _socket;
    private readonly EventLoop _loop;
    private readonly Pipe _input = new(InputOptions);
    private readonly Action _flushCompleted;
    private ValueTask<FlushResult> _pendingFlush;

    // Loop-thread state: the input pipe's writer is only ever used on the loop thread.
    private bool _paused;
    private bool _inputDone;
    private volatile bool _readerGone;
    private volatile bool _closeRequested;

    public LoopTransport(Socket socket, EventLoop loop)
    {
        _socket = socket;
        _loop = loop;
        Fd = socket.SafeHandle.DangerousGetHandle();
        _flushCompleted = OnFlushCompleted;
        Output = PipeWriter.Create(new SendStream(this), new StreamPipeWriterOptions(minimumBufferSize: ReadSize, leaveOpen: true));
    }

    public PipeReader Input => _input.Reader;

    public PipeWriter Output { get; }

    internal nint Fd { get; }

    internal ulong Token { get; set; }

    public void Start() => _loop.Register(this);

    /// <summary>Hard close: reset the connection, dropping anything unsent.</summary>
    public void Abort()
    {
        try
        {
            _socket.LingerState = new LingerOption(true, 0);
        }
        catch (ObjectDisposedException)
        {
        }
        catch (SocketException)
        {
        }

        Close(shutdown: false);
    }

    /// <summary>Graceful close after the broker finished: what was written is sent, then FIN.</summary>
    public ValueTask DisposeAsync()
    {
        Close(shutdown: true);
        return ValueTask.CompletedTask;
    }

    /// <summary>The loop saw the socket readable (or closed by the peer). Loop thread only.</summary>
    internal void OnReadable()
    {
        if (!_paused && !_inputDone)
        {
            ReadAvailable();
        }
    }

    /// <summary>
    /// On the loop thread: the broker caught up with a full input pipe (read what waited in the socket
    /// meanwhile), or the connection is closing (end the input).
    /// </summary>
    internal void OnResumed()
    {
        if (_inputDone)
        {
            return;
        }

        if (_closeRequested || _readerGone)
        {
            EndInput();
            return;
        }

        _paused = false;
        ReadAvailable();
    }

    private unsafe void ReadAvailable()
    {
        var writer = _input.Writer;
        var received = false;
        var ended = false;
        var handleAdded = false;
        try
        {
            _socket.SafeHandle.DangerousAddRef(ref handleAdded);
            while (true)
            {
                var memory = writer.GetMemory(ReadSize);
                nint n;
                using (var pin = memory.Pin())
                {
                    n = Native.Recv(Fd, (byte*)pin.Pointer, memory.Length);
                }

                if (n > 0)
                {
                    writer.Advance((int)n);
                    received = true;

                    // A short read emptied the socket; with edge-triggered epoll the next arrival raises a
                    // new event, so there is no need for another call that would only say EAGAIN.
                    if (n < memory.Length)
                    {
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
                _socket.SafeHandle.DangerousRelease();
            }
        }

        if (received)
        {
            // The broker's read loop runs inside this call (inline reader scheduler).
            var flush = writer.FlushAsync();
            if (!flush.IsCompleted)
            {
                // The broker is not taking data (a congested subscriber, a held publish): stop reading
                // this socket until it catches up, so TCP slows the sender down.
                _paused = true;
                _pendingFlush = flush;
                flush.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_flushCompleted);
                return;
            }

#pragma warning disable VSTHRD002 // the flush has completed: Result does not wait
            ended |= flush.Result.IsCompleted; // the broker stopped reading
#pragma warning restore VSTHRD002
        }

        if (ended || _closeRequested)
        {
            EndInput();
        }
    }

    /// <summary>A paused flush finished (on whichever thread let the broker catch up): continue on the loop.</summary>
    private void OnFlushCompleted()
    {
        try
        {
#pragma warning disable VSTHRD002 // called when the flush has completed: Result does not wait
            var result = _pendingFlush.Result;
#pragma warning restore VSTHRD002
            _readerGone = result.IsCompleted || result.IsCanceled;
        }
        catch (InvalidOperationException)
        {
            _readerGone = true;
        }

        _pendingFlush = default;
        _loop.Resume(this);
    }

    /// <summary>No more input: the broker's read loop sees the end of the stream. Loop thread only.</summary>
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
            // Only while the descriptor is certainly still this socket's (closing it removes it anyway).
            _socket.SafeHandle.DangerousAddRef(ref added);
            _loop.Forget(Fd);
        }
        catch (ObjectDisposedException)
        {
        }
        finally
        {
            if (added)
            {
                _socket.SafeHandle.DangerousRelease();
            }
        }

        _input.Writer.Complete();
    }

    private void Close(bool shutdown)
    {
        // The input pipe belongs to the loop thread: it ends it there.
        _closeRequested = true;
        _loop.Resume(this);
        if (shutdown)
        {
            try
            {
                _socket.Shutdown(SocketShutdown.Both);
            }
            catch (SocketException)
            {
            }
            catch (ObjectDisposedException)
            {
            }
        }

        _socket.Dispose();
    }

    /// <summary>
    /// The output side: each write is one non-blocking send() from the calling thread; only a full
    /// send buffer falls back to the runtime's asynchronous send, which waits for room.
    /// </summary>
    private sealed class SendStream(LoopTransport owner) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var sent = TrySend(buffer.Span);
            return sent == buffer.Length ? ValueTask.CompletedTask : SendRestAsync(buffer[sent..], cancellationToken);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        /// <summary>Sends what the socket takes now; returns the number of bytes sent.</summary>
        private unsafe int TrySend(ReadOnlySpan<byte> data)
        {
            var socket = owner._socket;
            var added = false;
            var total = 0;
            try
            {
                socket.SafeHandle.DangerousAddRef(ref added);
                fixed (byte* start = data)
                {
                    while (total < data.Length)
                    {
                        var n = Native.Send(owner.Fd, start + total, data.Length - total);
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
                    socket.SafeHandle.DangerousRelease();
                }
            }

            return total;
        }

        private async ValueTask SendRestAsync(ReadOnlyMemory<byte> rest, CancellationToken cancellationToken)
        {
            while (!rest.IsEmpty)
            {
                var n = await owner._socket.SendAsync(rest, SocketFlags.None, cancellationToken);
                rest = rest[n..];
            }
        }
    }
}
