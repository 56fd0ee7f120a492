using System.Buffers;
using System.IO.Pipelines;
using System.Security.Cryptography.X509Certificates;
using Trellis.Broker.Hosting;
using Trellis.Broker.Protocol;

namespace Trellis.Broker.Internal;

/// <summary>
/// One client network connection: a read loop that decodes and handles packets, and a writer
/// loop that is the only code touching the output pipe. Control packets (acks, SUBACK, PINGRESP)
/// are encoded into <see cref="_control"/> by the reader and written by the writer.
/// </summary>
internal sealed partial class MqttConnection : IDisposable, IThreadPoolWorkItem, IInputListener
{
    private readonly MqttBroker _broker;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly IConnectionTransport _transport;

    /// <summary>Cancelled when the connection closes; made on first need (most connections never wait on it), <see cref="ClosedSource"/> once closed.</summary>
    private CancellationTokenSource? _cts;
    private volatile bool _disposed;
    private readonly Guid _sessionId = Guid.NewGuid();

    /// <summary>
    /// The monitor this object's state is guarded by: the object itself (internal, never handed to
    /// code that could lock it too), so that each connection carries no lock object of its own
    /// (40 bytes each; a thin lock in the object header costs nothing until contended).
    /// </summary>
    private object Gate => this;
    private ArrayBufferWriter<byte>? _control;
    private Dictionary<string, bool>? _publishAllowed;
    private string?[]? _topicAliases;
    private TopicCache? _topics;
    private int _closing;
    private bool _closeAfterFlush;
    private Task? _writer;
    private TaskCompletionSource? _closeFlushed;
    private int _writerRunning;

    /// <summary>How many <see cref="WriteLoopAsync"/> runs are under way (first line to last, awaits included): 0 or 1, briefly 2 as one stands down.</summary>
    private int _writerActive;
    private HashSet<MqttConnection>? _deferredWakes;
    private int _writeRequested;
    private bool _hardAbort;
    private Task? _pendingRequest;
    private (byte Qos, ushort PacketId, byte Reason) _pendingAck;

    /// <summary>
    /// Acknowledgements (PUBACK, PUBREC, SUBACK, CONNACK …) written while a journal write they vouch
    /// for is not yet on disk; they move to <see cref="_control"/> once <see cref="_durableWait"/> completes.
    /// </summary>
    private ArrayBufferWriter<byte>? _held;

    /// <summary>The latest journal group this read batch's acknowledgements wait for (read loop only).</summary>
    private Task? _durableWait;

    /// <summary>QoS 1 PUBACKs held back, counted against the Receive Maximum (read loop only).</summary>
    private int _heldQos1;

    /// <summary>Set once the CONNACK is on its way: the writer sends no PUBLISH before it (§3.2.0-1).</summary>
    private volatile bool _deliveriesOpen;

    public MqttConnection(MqttBroker broker, IConnectionTransport transport, X509Certificate2? clientCertificate, bool isTls, string remoteAddress, string listener)
    {
        _broker = broker;
        _input = transport.Input;
        _output = transport.Output;
        _transport = transport;
        ClientCertificate = clientCertificate;
        IsTls = isTls;
        RemoteAddress = remoteAddress;
        Listener = listener;
        OpenedAtMs = broker.NowMs;
        LastActivityMs = OpenedAtMs;
    }

    public X509Certificate2? ClientCertificate { get; }

    public bool IsTls { get; }

    public string RemoteAddress { get; }

    public string Listener { get; }

    public long OpenedAtMs { get; }

    public long LastActivityMs;

    /// <summary>A subscriber this connection's publishes filled up; the read loop waits for it.</summary>
    public Session? CongestedOn;

    /// <summary>When a partial packet started waiting for its remaining bytes (0 = none pending).</summary>
    public long PartialSinceMs;

    /// <summary>The accepted CONNECT's client id; null until then. The packet itself is not kept (only what is needed later).</summary>
    private string? _clientId;
    private bool _v5;

    /// <summary>True once a CONNECT was accepted.</summary>
    public bool IsConnected => Volatile.Read(ref _clientId) is not null;

    /// <summary>The keep-alive of the accepted CONNECT (0 = none).</summary>
    public ushort KeepAliveSeconds { get; private set; }

    /// <summary>The will of the accepted CONNECT, if it gave one.</summary>
    public MqttMessage? Will { get; private set; }

    public uint WillDelaySeconds { get; private set; }

    public Session? Session { get; private set; }

    public ClientPrincipal? Principal { get; private set; }

    /// <summary>Where this client's activity is counted, from its CONNECT on; null when counting is off.</summary>
    public Trellis.Core.Monitoring.DeviceActivity? Activity { get; private set; }

    public bool IsV5 => _v5;

    public string ClientId => _clientId ?? string.Empty;

    /// <summary>AWS's sessionIdentifier: one per connection (kept as a Guid, formatted when an event needs it).</summary>
    public string SessionIdentifier => _sessionId.ToString();

    /// <summary>AWS's versionNumber: increments with each connect of this client id.</summary>
    public long VersionNumber { get; set; }

    /// <summary>Why the connection ended, in AWS lifecycle-event terms.</summary>
    public string DisconnectReason { get; private set; } = "CONNECTION_LOST";

    public bool ClientInitiated { get; private set; }

    public bool TakenOver { get; set; }

    /// <summary>
    /// Set with <see cref="TakenOver"/>: the newer connection did not continue this one's session
    /// (it started clean, or this session had no expiry), so the session ended and the will is due now.
    /// When the session goes on, the newer connection came back within any will delay and the will is
    /// never sent (MQTT 5 §3.1.2.5 and §3.1.4).
    /// </summary>
    public bool TakeoverEndedSession { get; set; }

    /// <summary>True when the will must not be published (clean DISCONNECT).</summary>
    public bool WillDiscarded { get; private set; }

    public int InflightWindow { get; private set; } = 1;

    public uint ClientMaxPacketSize { get; private set; }

    /// <summary>Cancelled when the connection closes.</summary>
    public CancellationToken Closed
    {
        get
        {
            var cts = Volatile.Read(ref _cts);
            if (cts is null)
            {
                var made = new CancellationTokenSource();
                cts = Interlocked.CompareExchange(ref _cts, made, null) ?? made;
                if (cts != made)
                {
                    made.Dispose();
                }
            }

            return cts.Token;
        }
    }

    /// <summary>What <see cref="_cts"/> becomes once the connection is closed: a token asked for later is already cancelled.</summary>
    private static readonly CancellationTokenSource ClosedSource = MakeCancelled();

    private static CancellationTokenSource MakeCancelled()
    {
        var cts = new CancellationTokenSource();
        cts.Cancel();
        return cts;
    }

    /// <summary>Cancels <see cref="Closed"/> (once; later calls do nothing).</summary>
    private void CancelClosed()
    {
        var cts = Interlocked.Exchange(ref _cts, ClosedSource);
        if (cts is not null && cts != ClosedSource)
        {
            // Not disposed: waits registered on its token may still be unregistering (a source without
            // a timer or wait handle holds nothing that needs disposing).
            cts.Cancel();
        }
    }

    /// <summary>Completed once the writer sent the final packet (or gave up); created only when a close waits for it.</summary>
    private TaskCompletionSource CloseFlushed =>
        LazyInitializer.EnsureInitialized(ref _closeFlushed, static () => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    /// <summary>
    /// Signals that there is something to send. The writer runs on demand on the thread pool and
    /// exits when there is nothing left, so an idle connection holds no writer task or buffer.
    /// </summary>
    public void Wake()
    {
        Volatile.Write(ref _writeRequested, 1);
        if (Interlocked.CompareExchange(ref _writerRunning, 1, 0) == 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
    }

    void IThreadPoolWorkItem.Execute() => _writer = WriteLoopAsync(inline: false);

    /// <summary>
    /// <see cref="Wake"/> from this connection's own read loop: the writer starts on this thread (at
    /// the end of the event loop's batch there), not on the thread pool. A CONNACK then costs no
    /// thread hop, which on a connect storm was most of the thread pool's work.
    /// </summary>
    private void WakeHere()
    {
        Volatile.Write(ref _writeRequested, 1);
        WakeOnThisThread();
    }

    /// <summary>
    /// Called from another connection's read loop: the wake is deferred to the end of that read
    /// batch and then run inline (<see cref="FlushDeferredWakes"/>), which saves a thread-pool hop
    /// per delivery and still writes a whole batch of messages per syscall.
    /// </summary>
    public void DeferWake(MqttConnection target)
    {
        Volatile.Write(ref target._writeRequested, 1);
        (_deferredWakes ??= []).Add(target);
    }

    /// <summary>Deliveries of one read batch to more connections than this are split across threads.</summary>
    private const int ParallelFanOutThreshold = 128;

    /// <summary>
    /// On an event-loop thread: the writers woken while the loop handles one batch of readiness events,
    /// started together at the end of that batch (<see cref="FlushLoopWakes"/>). Sending back to back
    /// lets one wake-up of a receiving peer cover several messages, where a send per event would wake
    /// it (an interrupt to another CPU) every time.
    /// </summary>
    [ThreadStatic]
    private static HashSet<MqttConnection>? t_loopWakes;

    /// <summary>The set <see cref="t_loopWakes"/> is swapped with while its writers start (they may wake others).</summary>
    [ThreadStatic]
    private static HashSet<MqttConnection>? t_spareWakes;

    /// <summary>
    /// Writers woken on a loop thread are started at most this many at a time. Measured at 500
    /// publisher/subscriber pairs: groups of 4 lowered p50 at 10k-20k msg/s against groups of 64
    /// (a delivery no longer waits for the rest of a long batch to be read) and cost no CPU; the
    /// peer still gets several messages per wake-up.
    /// </summary>
    private const int LoopWakeBatch = 4;

    /// <summary>Marks the calling thread as an event loop's: writers woken on it wait for <see cref="FlushLoopWakes"/>.</summary>
    internal static void EnterLoopThread() => t_loopWakes = [];

    /// <summary>Starts the writers woken during the event loop's batch that just ended.</summary>
    internal static void FlushLoopWakes()
    {
        if (t_loopWakes is not { Count: > 0 } targets)
        {
            return;
        }

        // A writer started here can close its connection inline, whose read loop then defers wakes
        // of its own: they go to the other set, for the next flush, not into the one being read.
        t_loopWakes = t_spareWakes ?? [];
        t_spareWakes = null;
        StartWriters(targets);
        t_spareWakes = targets;
    }

    /// <summary>
    /// Runs the deferred wakes of this read batch: writers start on this thread. With
    /// <paramref name="wakeSelf"/>, this connection's own writer too (its acknowledgements); a
    /// connection that only ever wakes itself (an idle device, a publisher's PUBACKs) needs no set.
    /// </summary>
    private void FlushDeferredWakes(bool wakeSelf = false)
    {
        if (wakeSelf)
        {
            Volatile.Write(ref _writeRequested, 1);
        }

        if (_deferredWakes is not { Count: > 0 } targets)
        {
            if (wakeSelf)
            {
                WakeOnThisThread();
            }

            return;
        }

        if (wakeSelf)
        {
            targets.Add(this);
        }

        if (t_loopWakes is { } loopWakes)
        {
            // On a loop thread: the writers start when the loop's batch ends, or once LoopWakeBatch are waiting.
            // Item by item: UnionWith takes an IEnumerable and would box the set's enumerator.
            foreach (var target in targets)
            {
                loopWakes.Add(target);
            }

            targets.Clear();
            if (loopWakes.Count >= LoopWakeBatch)
            {
                FlushLoopWakes();
            }

            return;
        }

        StartWriters(targets);
    }

    /// <summary>This connection's writer, started as <see cref="FlushDeferredWakes"/> would start it from a set of one.</summary>
    private void WakeOnThisThread()
    {
        if (t_loopWakes is { } loopWakes)
        {
            loopWakes.Add(this);
            if (loopWakes.Count >= LoopWakeBatch)
            {
                FlushLoopWakes();
            }

            return;
        }

        if (Interlocked.CompareExchange(ref _writerRunning, 1, 0) == 0)
        {
            _writer = WriteLoopAsync(inline: true);
        }
    }

    /// <summary>Starts the writers of <paramref name="targets"/> that are not running, then clears the set.</summary>
    private static void StartWriters(HashSet<MqttConnection> targets)
    {
        // A large fan-out: the second half of the writers goes to the thread pool first, so that
        // the other cores send while this thread sends the first half.
        var inlineCount = targets.Count > ParallelFanOutThreshold ? targets.Count / 2 : targets.Count;
        var index = 0;
        if (inlineCount < targets.Count)
        {
            foreach (var target in targets)
            {
                if (index++ >= inlineCount && Interlocked.CompareExchange(ref target._writerRunning, 1, 0) == 0)
                {
                    ThreadPool.UnsafeQueueUserWorkItem(target, preferLocal: false);
                }
            }
        }

        index = 0;
        foreach (var target in targets)
        {
            if (index++ >= inlineCount)
            {
                break;
            }

            if (Interlocked.CompareExchange(ref target._writerRunning, 1, 0) == 0)
            {
                target._writer = target.WriteLoopAsync(inline: true);
            }
        }

        targets.Clear();
    }

    /// <summary>Closes the connection, with an MQTT 5 DISCONNECT carrying <paramref name="reason"/> when the client speaks 5.0.</summary>
    public void Close(byte reason, string awsReason, string? reasonString = null)
    {
        if (Interlocked.Exchange(ref _closing, 1) == 1)
        {
            return;
        }

        DisconnectReason = awsReason;
        if (IsV5 && Session is not null)
        {
            lock (Gate)
            {
                MqttEncoder.WriteDisconnect(Control, reason, reasonString);
                _closeAfterFlush = true;
            }

            Wake();

            // The writer aborts after flushing; make sure we go even if it is stuck on a dead socket.
            _ = Task.Delay(TimeSpan.FromSeconds(2), CancellationToken.None).ContinueWith(_ => Abort(), TaskScheduler.Default);
        }
        else
        {
            Abort();
        }
    }

    /// <summary>Hard close: the socket is reset, unsent data is dropped.</summary>
    public void Abort()
    {
        Volatile.Write(ref _hardAbort, true);
        CancelReads();
        _transport.Abort();
    }

    /// <summary>
    /// Ends the read loop: the token for what waits on it, and the pending read itself (the read
    /// takes no token, so an idle connection holds no registration on it).
    /// </summary>
    private void CancelReads()
    {
        CancelClosed();
        try
        {
            _input.CancelPendingRead();
        }
        catch (ObjectDisposedException)
        {
        }
        catch (InvalidOperationException)
        {
        }
    }

    private ArrayBufferWriter<byte> Control => _control ??= new ArrayBufferWriter<byte>(64);

    /// <summary>Where the read loop writes its answers: held back while a journal write they vouch for is pending. Under <see cref="Gate"/>.</summary>
    private ArrayBufferWriter<byte> Acks => _durableWait is null ? Control : _held ??= new ArrayBufferWriter<byte>(64);

    private void SendControl(PacketType type, ushort packetId, byte reason = 0)
    {
        lock (Gate)
        {
            MqttEncoder.WriteAck(Acks, type, packetId, IsV5, reason);
        }
    }

    /// <summary>
    /// Acknowledgements written from now until the end of this read batch wait for
    /// <paramref name="durable"/>. Journal groups commit in order, so the latest pending one covers the earlier ones.
    /// </summary>
    private void HoldAcksUntil(Task? durable)
    {
        if (durable is not null && (_durableWait is null || _durableWait.IsCompleted || !durable.IsCompleted))
        {
            _durableWait = durable;
        }
    }

    /// <summary>At the end of a read batch: once its journal writes are on disk, its acknowledgements go out.</summary>
    private async Task ReleaseHeldAcksAsync(Task durable)
    {
        if (!durable.IsCompletedSuccessfully)
        {
            await durable.WaitAsync(Closed); // a failed journal write throws here: nothing it vouches for is acknowledged
        }

        lock (Gate)
        {
            if (_held is { WrittenCount: > 0 })
            {
                Control.Write(_held.WrittenSpan);
                _held.ResetWrittenCount();
            }

            _durableWait = null;
            _heldQos1 = 0;
            _deliveriesOpen = true;
        }

        Wake();
    }

    private async Task ShutdownAsync()
    {
        try
        {
            Interlocked.Exchange(ref _closing, 1);
            FlushDeferredWakes();
            bool flushFirst;
            lock (Gate)
            {
                flushFirst = _closeAfterFlush;
            }

            if (flushFirst)
            {
                // Let the writer send the final CONNACK or DISCONNECT before the socket goes.
                Wake();
                await Task.WhenAny(CloseFlushed.Task, Task.Delay(TimeSpan.FromSeconds(2), CancellationToken.None));
            }

            CancelClosed();

            // Take the writer slot for good: a late Wake (a server reply racing the close) can no
            // longer start a writer on the pipe we are about to complete.
            Interlocked.Exchange(ref _writerRunning, 1);

            // The writer must be done with the pipe before it is completed. One that another thread has
            // just started may still be running its first batch before its task is even stored.
            var deadline = Environment.TickCount64 + 2000;
            while (Volatile.Read(ref _writerActive) > 0 && Environment.TickCount64 < deadline)
            {
                if (_writer is { IsCompleted: false } writer)
                {
                    await Task.WhenAny(writer, Task.Delay(TimeSpan.FromMilliseconds(Math.Max(1, deadline - Environment.TickCount64)), CancellationToken.None));
                    break;
                }

                await Task.Delay(1, CancellationToken.None);
            }

            if (Volatile.Read(ref _hardAbort))
            {
                _transport.Abort();
            }
            else
            {
                // Graceful close: what was written (a refusing CONNACK, a DISCONNECT) still reaches the
                // client, but a peer that does not read cannot hold the connection open: a final flush
                // still waiting after 2 s (a stream writer waits for room for good) resets the socket.
                try
                {
                    await _output.CompleteAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(2), CancellationToken.None);
                }
                catch (TimeoutException)
                {
                    _transport.Abort();
                }

                await _input.CompleteAsync();
            }

            await _broker.OnConnectionClosedAsync(this);
        }
        finally
        {
            // Whatever happened above, the socket is closed (gracefully when it still can be) and not left to the finalizer.
            Dispose();
            await _transport.DisposeAsync();
        }
    }

    /// <summary>Ends the read loop after the writer flushed its last packet; the socket closes gracefully.</summary>
    private void EndAfterFlush() => CancelReads();

    public void Dispose()
    {
        _disposed = true;
        CancelClosed();
    }
}
