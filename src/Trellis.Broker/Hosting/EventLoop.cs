namespace Trellis.Broker.Hosting;

/// <summary>
/// One epoll loop on a dedicated thread, as Mosquitto runs: when a socket becomes readable the loop
/// thread reads it and runs the broker's packet handling (and the deliveries it makes) right there.
/// The runtime's own socket engine would instead hand every readiness event from its epoll thread
/// to a thread-pool worker, which costs a thread hop, an extra receive call and a wake-up per event;
/// with many connections that each send a message at a time that was most of the broker's CPU.
/// A connection with more to read than one receive takes continues on the thread pool, and sends go
/// out on the thread that produced them (see <see cref="LoopTransport"/>).
/// </summary>
internal sealed unsafe class EventLoop : IDisposable
{
    private const int MaxEvents = 256;
    private const ulong WakeToken = 0;
    private const ulong AcceptToken = ulong.MaxValue;
    private readonly int _epoll;
    private readonly int _wake;
    private readonly Thread _thread;
    private readonly Lock _fdLock = new();

    /// <summary>
    /// The registered transports by slot: an epoll token is the slot (plus one) in its low 32 bits and
    /// a registration number in its high bits, so a late event for a slot reused since is told apart.
    /// Written under <see cref="_slotLock"/>, read by the loop thread without it; 8 bytes a
    /// connection where a concurrent dictionary's node took 48.
    /// </summary>
    private LoopTransport?[] _slots = new LoopTransport?[64];
    private readonly Stack<int> _freeSlots = new();
    private int _slotsUsed;
    private readonly Lock _slotLock = new();
    private readonly Action<Exception> _onError;
    private Action? _onAcceptable;
    private long _nextToken;
    private bool _closed;
    private volatile bool _stopping;

    public EventLoop(string name, Action<Exception> onError)
    {
        _onError = onError;
        _epoll = Native.EpollCreate();
        _wake = Native.EventFdCreate();
        var error = Native.EpollAdd(_epoll, _wake, Native.EPOLLIN, WakeToken);
        if (error != 0)
        {
            throw new IOException($"epoll_ctl(eventfd) failed: errno {error}");
        }

        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    /// <summary>Watches the transport's socket; readable data is pushed into its input pipe from now on.</summary>
    public void Register(LoopTransport transport)
    {
        ulong token;
        int slot;
        lock (_slotLock)
        {
            slot = _freeSlots.Count > 0 ? _freeSlots.Pop() : _slotsUsed++;
            if (slot >= _slots.Length)
            {
                var larger = new LoopTransport?[_slots.Length * 2];
                Array.Copy(_slots, larger, _slots.Length);
                Volatile.Write(ref _slots, larger);
            }

            token = ((ulong)(++_nextToken & 0x7FFF_FFFF) << 32) | (uint)(slot + 1);
            transport.Token = token;
            Volatile.Write(ref _slots[slot], transport);
        }

        // Edge-triggered: one event per arrival; whoever reads the socket reads it until it is empty.
        var error = Native.EpollAdd(_epoll, (int)transport.Fd, Native.EPOLLIN | Native.EPOLLRDHUP | Native.EPOLLET, token);
        if (error != 0)
        {
            Unregister(transport);
            throw new IOException($"epoll_ctl(ADD) failed: errno {error}");
        }
    }

    /// <summary>
    /// Watches a listening socket: when connections are pending, this loop's thread runs
    /// <paramref name="onAcceptable"/> to accept them. Every loop may watch the same socket; the
    /// kernel wakes one of them per arrival (EPOLLEXCLUSIVE), so accepting costs no thread hop.
    /// Level-triggered: what one call leaves pending raises the next event.
    /// </summary>
    public void WatchListener(nint fd, Action onAcceptable)
    {
        _onAcceptable = onAcceptable;
        var error = Native.EpollAdd(_epoll, (int)fd, Native.EPOLLIN | Native.EPOLLEXCLUSIVE, AcceptToken);
        if (error != 0)
        {
            throw new IOException($"epoll_ctl(ADD listener) failed: errno {error}");
        }
    }

    /// <summary>Stops dispatching events to the transport (late events for its token are ignored).</summary>
    public void Unregister(LoopTransport transport)
    {
        lock (_slotLock)
        {
            var slot = (int)(uint)transport.Token - 1;
            if ((uint)slot < (uint)_slots.Length && _slots[slot] == transport)
            {
                _slots[slot] = null;
                _freeSlots.Push(slot);
            }
        }
    }

    /// <summary>The transport an event's token names, if it is still registered.</summary>
    private LoopTransport? Find(ulong token)
    {
        var slots = Volatile.Read(ref _slots);
        var slot = (int)(uint)token - 1;
        return (uint)slot < (uint)slots.Length && Volatile.Read(ref slots[slot]) is { } transport && transport.Token == token ? transport : null;
    }

    /// <summary>Removes a descriptor from the epoll set; only while it is certainly still open.</summary>
    public void Forget(nint fd)
    {
        lock (_fdLock)
        {
            if (!_closed)
            {
                Native.EpollDel(_epoll, (int)fd);
            }
        }
    }

    public void Dispose()
    {
        lock (_fdLock)
        {
            if (_closed)
            {
                return;
            }

            _stopping = true;
            Native.Signal(_wake);
            _closed = true;
        }

        if (Thread.CurrentThread != _thread)
        {
            _thread.Join(TimeSpan.FromSeconds(5));
        }

        Native.Close(_wake);
        Native.Close(_epoll);
    }

    private void Run()
    {
        var events = stackalloc byte[MaxEvents * 16];
        var size = Native.EventSize;
        var dataOffset = Native.EventDataOffset;
        Internal.MqttConnection.EnterLoopThread();
        while (!_stopping)
        {
            var count = Native.Wait(_epoll, events, MaxEvents, -1);
            if (count < 0)
            {
                continue; // EINTR
            }

            for (var i = 0; i < count; i++)
            {
                var ev = events + (i * size);
                var token = *(ulong*)(ev + dataOffset);
                if (token == WakeToken)
                {
                    Native.Drain(_wake); // Dispose: the while condition ends the loop
                }
                else if (token == AcceptToken)
                {
                    try
                    {
                        _onAcceptable?.Invoke();
                    }
                    catch (Exception e)
                    {
                        _onError(e);
                    }
                }
                else if (Find(token) is { } transport)
                {
                    // A fault while serving one connection must not stop the loop that serves the others.
                    try
                    {
                        transport.OnReadable(*(uint*)ev);
                    }
                    catch (Exception e)
                    {
                        _onError(e);
                    }
                }
            }

            try
            {
                Internal.MqttConnection.FlushLoopWakes();
            }
            catch (Exception e)
            {
                _onError(e);
            }
        }
    }
}
