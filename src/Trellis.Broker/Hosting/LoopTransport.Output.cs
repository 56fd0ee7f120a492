using System.IO.Pipelines;
using System.Net.Sockets;

namespace Trellis.Broker.Hosting;

/// <summary>
/// The output side: what the broker writes collects in one buffer, and a flush is one non-blocking
/// send() from the flushing thread; only a full send buffer falls back to the runtime's
/// asynchronous send, which waits for room. The buffer is rented for a write and returned once it
/// is sent, so an idle connection holds none. Single writer, as for any PipeWriter: the broker's
/// write loop, which awaits each flush before it writes again.
/// </summary>
/// <remarks>
/// The transport is its own output (a <see cref="PipeWriter"/>), so a connection carries one object
/// for both, not a writer beside the transport (64 bytes a connection).
/// </remarks>
internal sealed partial class LoopTransport : PipeWriter
{
    private const int SendIdle = 0;
    private const int Sending = 1;
    private const int SendDone = 2;

    private byte[]? _buffer;
    private int _written;

    /// <summary>On a TLS connection: how much of the buffer's start is already encrypted (records a cancelled flush left unsent).</summary>
    private int _sealed;

    /// <summary>
    /// SendIdle, Sending (a flush owns the buffer) or SendDone (completed, the buffer returned). A close
    /// can come while a flush still waits for room (the broker gives a stuck writer 2 s): it
    /// then cancels that send and leaves the buffer to it, since returning the array to the pool
    /// under a pending send would let the pool hand it out twice. Whoever moves the state to
    /// SendDone returns the buffer.
    /// </summary>
    private int _state;
    private volatile bool _completeRequested;
    private CancellationTokenSource? _sendCancel;

    public override void Advance(int bytes)
    {
        if (bytes < 0 || _buffer is null || _written + bytes > _buffer.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(bytes), "advanced past the buffer that was handed out");
        }

        _written += bytes;
    }

    public override Memory<byte> GetMemory(int sizeHint = 0) => Reserve(sizeHint).AsMemory(_written);

    public override Span<byte> GetSpan(int sizeHint = 0) => Reserve(sizeHint).AsSpan(_written);

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        if (_written == 0 || _buffer is null)
        {
            return new ValueTask<FlushResult>(new FlushResult(false, Volatile.Read(ref _state) == SendDone));
        }

        if (Interlocked.CompareExchange(ref _state, Sending, SendIdle) != SendIdle)
        {
            return new ValueTask<FlushResult>(new FlushResult(false, true)); // completed
        }

        int sent;
        try
        {
            Seal();
            sent = TrySend(_buffer.AsSpan(0, _written));
        }
        catch
        {
            EndSend(sentAll: false);
            throw;
        }

        if (sent < _written)
        {
            return SendRestAsync(sent, cancellationToken);
        }

        EndSend(sentAll: true);
        return new ValueTask<FlushResult>(new FlushResult(false, false));
    }

    /// <summary>No flush is sending: a close may write to the socket without cutting into a record.</summary>
    public bool Quiet => Volatile.Read(ref _state) != Sending;

    public override void CancelPendingFlush() => _sendCancel?.Cancel();

    public override void Complete(Exception? exception = null)
    {
        _completeRequested = true;
        if (Interlocked.CompareExchange(ref _state, SendDone, SendIdle) != SendIdle)
        {
            _sendCancel?.Cancel(); // a flush is sending: it returns the buffer when it ends
            return;
        }

        if (exception is null && _written > 0 && _buffer is not null)
        {
            // What was written still goes out if the socket takes it now (a refusing CONNACK).
            try
            {
                Seal();
                _ = TrySend(_buffer.AsSpan(0, _written));
            }
            catch (IOException)
            {
            }
        }

        ReturnBuffer();
    }

    /// <summary>
    /// Sends what the socket takes now and lets the rest go: a close must not wait for a peer
    /// that does not read (with the stream writer, a client that sent DISCONNECT while its socket
    /// was full stayed connected for good, its final flush waiting forever).
    /// </summary>
    public override ValueTask CompleteAsync(Exception? exception = null)
    {
        Complete(exception);
        return ValueTask.CompletedTask;
    }

    private byte[] Reserve(int sizeHint)
    {
        var need = _written + Math.Max(sizeHint, 1);
        if (_buffer is null)
        {
            _buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(Math.Max(need, ReadSize));
        }
        else if (need > _buffer.Length)
        {
            var larger = System.Buffers.ArrayPool<byte>.Shared.Rent(Math.Max(need, _buffer.Length * 2));
            _buffer.AsSpan(0, _written).CopyTo(larger);
            System.Buffers.ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = larger;
        }

        return _buffer;
    }

    /// <summary>On a TLS connection: the plaintext written since the last seal becomes records, in a buffer that replaces this one.</summary>
    private void Seal()
    {
        if (_tls is not { } tls || _buffer is null || _written == _sealed)
        {
            return;
        }

        var records = tls.Session.Encrypt(_buffer, _sealed, _written, out var length);
        System.Buffers.ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = records;
        _written = length;
        _sealed = length;
    }

    /// <summary>Ends a flush: the buffer goes back to the pool once sent (an idle connection holds none), or when a close came meanwhile.</summary>
    private void EndSend(bool sentAll)
    {
        if (sentAll)
        {
            ReturnBuffer();
        }

        Volatile.Write(ref _state, SendIdle);
        if (_completeRequested && Interlocked.CompareExchange(ref _state, SendDone, SendIdle) == SendIdle)
        {
            ReturnBuffer();
        }
    }

    private void ReturnBuffer()
    {
        _written = 0;
        _sealed = 0;
        if (_buffer is { } buffer)
        {
            _buffer = null;
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async ValueTask<FlushResult> SendRestAsync(int sent, CancellationToken cancellationToken)
    {
        var buffer = _buffer!;
        var written = _written;
        var sentAll = false;
        using var pending = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _sendCancel = pending;
        try
        {
            while (sent < written)
            {
                sent += await Socket.SendAsync(buffer.AsMemory(sent, written - sent), SocketFlags.None, pending.Token);
            }

            sentAll = true;
            return new FlushResult(false, false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && !_completeRequested)
        {
            // CancelPendingFlush: what is unsent stays for the next flush.
            buffer.AsSpan(sent, written - sent).CopyTo(buffer);
            _written = written - sent;
            _sealed = _tls is null ? 0 : _written; // on TLS these are records already
            return new FlushResult(true, false);
        }
        finally
        {
            _sendCancel = null;
            EndSend(sentAll);
        }
    }
}
