using System.Buffers;
using System.IO.Pipelines;
using System.Threading.Tasks.Sources;

namespace Trellis.Broker.Hosting;

/// <summary>
/// The input side of a <see cref="LoopTransport"/>: what the loop receives, for the broker's read
/// loop to parse, in one contiguous rented array. It does for one socket what a
/// <see cref="Pipe"/> with an inline reader scheduler does (a flush runs the waiting reader on the
/// flushing thread; past a threshold of unread bytes the writer waits for the reader), at a fraction
/// of the memory: a Pipe and its reader, writer, segment and segment pool cost about 540 bytes per
/// connection before any data, this 128 bytes (its waiters are made on first use; the broker is called back rather than awaiting a read), and an idle connection holds no array.
/// </summary>
/// <remarks>
/// Positions are absolute stream offsets: array index <c>i</c> is offset <c>_base + i</c>. The array
/// moves (compacted, or copied into a larger one) only for the writer, under the lock; while the
/// reader holds a buffer (between a read and its AdvanceTo) the array that buffer points into is
/// kept unchanged (<see cref="_held"/>) and returned to the pool once the reader lets go.
/// One writer at a time (the thread that owns the socket's input), one reader.
/// </remarks>
internal sealed class InputBuffer(int minimumRent, int pauseThreshold, int resumeThreshold) : PipeReader, IValueTaskSource<ReadResult>, IValueTaskSource<FlushResult>
{
    /// <summary>
    /// The monitor this object's state is guarded by: the object itself (internal, never handed to
    /// code that could lock it too), so that each connection carries no lock object of its own
    /// (40 bytes each; a thin lock in the object header costs nothing until contended).
    /// </summary>
    private object Gate => this;
    private byte[]? _array;
    private long _base;      // stream offset of _array[0]
    private long _head;      // first byte not consumed
    private long _committed; // end of what the reader may see (flushed)
    private long _tail;      // end of what the writer advanced over
    private long _examined;  // the reader waits for data past this

    private byte[]? _held;   // an array the reader's current buffer points into, when the writer moved on
    private long _heldBase;
    private bool _readerHolding;
    private bool _writerHolding;

    private bool _readerCompleted;
    private bool _writerCompleted;
    private bool _cancelRead;

    private bool _readPending;
    private bool _flushPending;

    /// <summary>The reader to call back when data arrives (<see cref="TryReadOrNotify"/>), instead of a pending read.</summary>
    private IInputListener? _listener;

    /// <summary>What a pending read or a paused flush completes, made on first use: a reader called back never needs it.</summary>
    private Waiters? _waiters;

    private sealed class Waiters
    {
        public ManualResetValueTaskSourceCore<ReadResult> Read; // inline continuations: the reader runs in the flush
        public ManualResetValueTaskSourceCore<FlushResult> Flush = new() { RunContinuationsAsynchronously = true };
    }

    private Waiters Wait => LazyInitializer.EnsureInitialized(ref _waiters);

    // ---- writer side (the loop or the pool thread that owns the socket's input) ----

    /// <summary>Room for at least <paramref name="sizeHint"/> bytes after what was written.</summary>
    public Memory<byte> GetMemory(int sizeHint)
    {
        lock (Gate)
        {
            _writerHolding = true;
            if (_array is null)
            {
                _array = ArrayPool<byte>.Shared.Rent(Math.Max(sizeHint, minimumRent));
                _base = _head;
            }
            else if (_array.Length - (_tail - _base) < sizeHint)
            {
                MakeRoom(sizeHint);
            }

            var start = (int)(_tail - _base);
            return _array.AsMemory(start);
        }
    }

    /// <summary>The writer wrote <paramref name="count"/> bytes into the memory it was given.</summary>
    public void Advance(int count)
    {
        lock (Gate)
        {
            _tail += count;
        }
    }

    /// <summary>
    /// Makes what was written visible and runs a waiting reader on this thread. Completes at once
    /// unless the reader has <c>pauseThreshold</c> bytes unread; then when it is back under
    /// <c>resumeThreshold</c> (on the thread pool), or has completed.
    /// </summary>
    public ValueTask<FlushResult> FlushAsync()
    {
        bool wakeReader;
        ReadResult result = default;
        IInputListener? listener = null;
        lock (Gate)
        {
            _committed = _tail;
            _writerHolding = false;
            if (_readerCompleted)
            {
                _head = _tail; // nobody will read it
                ReleaseIfEmpty();
                return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: true));
            }

            wakeReader = _committed > _examined && TakePendingRead(out result, out listener);
        }

        Wake(wakeReader, result, listener);

        lock (Gate)
        {
            if (_readerCompleted)
            {
                return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: true));
            }

            if (_committed - _head < pauseThreshold)
            {
                return new ValueTask<FlushResult>(default(FlushResult));
            }

            var wait = Wait;
            wait.Flush.Reset();
            _flushPending = true;
            return new ValueTask<FlushResult>(this, wait.Flush.Version);
        }
    }

    /// <summary>The writer is done for this pass without flushing: an empty array goes back to the pool.</summary>
    public void ReleaseWriter()
    {
        lock (Gate)
        {
            _writerHolding = false;
            ReleaseIfEmpty();
        }
    }

    /// <summary>No more input: the reader sees the end of the stream after what it has.</summary>
    public void CompleteWriter()
    {
        bool wakeReader;
        ReadResult result;
        IInputListener? listener;
        lock (Gate)
        {
            _writerCompleted = true;
            _writerHolding = false;
            _tail = _committed;
            wakeReader = TakePendingRead(out result, out listener);
        }

        Wake(wakeReader, result, listener);
    }

    // ---- reader side (the broker's read loop) ----

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        lock (Gate)
        {
            ObjectDisposedException.ThrowIf(_readerCompleted, this);
            if (_readPending || _listener is not null)
            {
                throw new InvalidOperationException("a read is already pending");
            }

            if (_cancelRead || _writerCompleted || _committed > _examined)
            {
                return new ValueTask<ReadResult>(TakeResult());
            }

            var wait = Wait;
            wait.Read.Reset();
            _readPending = true;
            return new ValueTask<ReadResult>(this, wait.Read.Version);
        }
    }

    /// <summary>
    /// A read without a pending task: true with the result when there is something to read (as
    /// <see cref="ReadAsync"/> would return at once); otherwise false, and <paramref name="listener"/>
    /// is called once, on the writer's thread, when there is (new data, the end, a canceled read).
    /// The listener then reads again. A reader waiting this way holds nothing but the reference.
    /// </summary>
    public bool TryReadOrNotify(out ReadResult result, IInputListener listener)
    {
        lock (Gate)
        {
            ObjectDisposedException.ThrowIf(_readerCompleted, this);
            if (_readPending || _listener is not null)
            {
                throw new InvalidOperationException("a read is already pending");
            }

            if (_cancelRead || _writerCompleted || _committed > _examined)
            {
                result = TakeResult();
                return true;
            }

            _listener = listener;
            result = default;
            return false;
        }
    }

    public override bool TryRead(out ReadResult result)
    {
        lock (Gate)
        {
            ObjectDisposedException.ThrowIf(_readerCompleted, this);
            if (_cancelRead || _writerCompleted || _committed > _head)
            {
                result = TakeResult();
                return true;
            }

            result = default;
            return false;
        }
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        bool resumeWriter;
        lock (Gate)
        {
            var consumedAt = Offset(consumed);
            var examinedAt = Math.Max(consumedAt, Offset(examined));
            if (consumedAt < _head || examinedAt > _committed)
            {
                throw new InvalidOperationException("AdvanceTo outside the buffer that was read");
            }

            _head = consumedAt;
            _examined = examinedAt;
            ReaderLetGo();
            ReleaseIfEmpty();
            resumeWriter = _flushPending && _committed - _head < resumeThreshold;
            if (resumeWriter)
            {
                _flushPending = false;
            }
        }

        if (resumeWriter)
        {
            _waiters!.Flush.SetResult(default);
        }
    }

    public override void CancelPendingRead()
    {
        bool wakeReader;
        ReadResult result;
        IInputListener? listener;
        lock (Gate)
        {
            _cancelRead = true;
            wakeReader = TakePendingRead(out result, out listener);
        }

        Wake(wakeReader, result, listener);
    }

    public override void Complete(Exception? exception = null)
    {
        bool resumeWriter;
        lock (Gate)
        {
            if (_readerCompleted)
            {
                return;
            }

            _readerCompleted = true;
            _listener = null;
            ReaderLetGo();
            resumeWriter = _flushPending;
            _flushPending = false;

            _head = _committed;
            ReleaseIfEmpty();
        }

        if (resumeWriter)
        {
            _waiters!.Flush.SetResult(new FlushResult(isCanceled: false, isCompleted: true));
        }
    }

    // ---- value-task sources ----

    ReadResult IValueTaskSource<ReadResult>.GetResult(short token) => _waiters!.Read.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<ReadResult>.GetStatus(short token) => _waiters!.Read.GetStatus(token);

    void IValueTaskSource<ReadResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _waiters!.Read.OnCompleted(continuation, state, token, flags & ~ValueTaskSourceOnCompletedFlags.UseSchedulingContext);

    FlushResult IValueTaskSource<FlushResult>.GetResult(short token) => _waiters!.Flush.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<FlushResult>.GetStatus(short token) => _waiters!.Flush.GetStatus(token);

    void IValueTaskSource<FlushResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _waiters!.Flush.OnCompleted(continuation, state, token, flags & ~ValueTaskSourceOnCompletedFlags.UseSchedulingContext);

    /// <summary>Outside the lock: completes the pending read taken under it, or calls back the listener taken under it.</summary>
    private void Wake(bool wakeReader, ReadResult result, IInputListener? listener)
    {
        if (wakeReader)
        {
            _waiters!.Read.SetResult(result);
        }

        listener?.OnInput();
    }

    // ---- under the lock ----

    /// <summary>
    /// A waiting reader's result, taken to be set once the lock is released (false when no read
    /// waits), or the listener to call then (which reads for itself).
    /// </summary>
    private bool TakePendingRead(out ReadResult result, out IInputListener? listener)
    {
        result = default;
        listener = _listener;
        _listener = null;
        if (!_readPending)
        {
            return false;
        }

        _readPending = false;
        result = TakeResult();
        return true;
    }

    /// <summary>What the reader gets: everything not consumed, as one segment of the current array.</summary>
    private ReadResult TakeResult()
    {
        var canceled = _cancelRead;
        _cancelRead = false;
        var length = (int)(_committed - _head);
        var buffer = _array is null || length == 0
            ? ReadOnlySequence<byte>.Empty
            : new ReadOnlySequence<byte>(_array, (int)(_head - _base), length);
        _readerHolding = _array is not null && length > 0;
        return new ReadResult(buffer, canceled, _writerCompleted && !canceled);
    }

    /// <summary>A position the reader hands back, as a stream offset.</summary>
    private long Offset(SequencePosition position)
    {
        var index = position.GetInteger();
        return position.GetObject() switch
        {
            byte[] array when ReferenceEquals(array, _array) => _base + index,
            byte[] array when ReferenceEquals(array, _held) => _heldBase + index,
            _ => _head, // the empty buffer: nothing consumed
        };
    }

    /// <summary>Room at the end for the writer: move the unread bytes to the front, or into a larger array.</summary>
    private void MakeRoom(int sizeHint)
    {
        var array = _array!;
        var start = (int)(_head - _base);
        var length = (int)(_tail - _head);
        if (!_readerHolding && array.Length - length >= sizeHint)
        {
            // Nobody looks at the array: compact in place.
            Buffer.BlockCopy(array, start, array, 0, length);
            _base = _head;
            return;
        }

        var larger = ArrayPool<byte>.Shared.Rent(Math.Max(array.Length * 2, length + sizeHint));
        Buffer.BlockCopy(array, start, larger, 0, length);
        if (_readerHolding && _held is null)
        {
            // The reader's buffer points into this array: keep it as it is until the reader lets go.
            _held = array;
            _heldBase = _base;
        }
        else
        {
            ArrayPool<byte>.Shared.Return(array);
        }

        _array = larger;
        _base = _head;
    }

    /// <summary>The reader holds no buffer any more: an array kept only for it goes back to the pool.</summary>
    private void ReaderLetGo()
    {
        _readerHolding = false;
        if (_held is not null)
        {
            ArrayPool<byte>.Shared.Return(_held);
            _held = null;
        }
    }

    /// <summary>Nothing unread and nobody holding the array: it goes back to the pool.</summary>
    private void ReleaseIfEmpty()
    {
        if (_array is not null && _head == _tail && !_readerHolding && !_writerHolding)
        {
            ArrayPool<byte>.Shared.Return(_array);
            _array = null;
        }
    }
}

/// <summary>A reader that <see cref="InputBuffer"/> calls back when there is something to read.</summary>
internal interface IInputListener
{
    /// <summary>Called once per <see cref="InputBuffer.TryReadOrNotify"/> that found nothing, outside the buffer's lock.</summary>
    void OnInput();
}
