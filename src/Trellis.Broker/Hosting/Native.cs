using System.Runtime.InteropServices;

namespace Trellis.Broker.Hosting;

/// <summary>The few Linux calls the event loops need (epoll, eventfd, non-blocking recv/send).</summary>
internal static unsafe partial class Native
{
    public const int EAGAIN = 11;
    public const int EINTR = 4;
    public const int EpollCtlAdd = 1;
    public const int EpollCtlDel = 2;
    public const uint EPOLLIN = 0x001;
    public const uint EPOLLERR = 0x008;
    public const uint EPOLLHUP = 0x010;
    public const uint EPOLLRDHUP = 0x2000;
    public const uint EPOLLET = 1u << 31;
    public const uint EPOLLEXCLUSIVE = 1u << 28;
    public const int ENFILE = 23;
    public const int EMFILE = 24;
    public const int ENOBUFS = 105;
    public const int ENOMEM = 12;
    public const int ECONNABORTED = 103;
    public const int MsgDontWait = 0x40;
    public const int MsgNoSignal = 0x4000;
    private const int CloExec = 0x80000;
    private const int EfdNonBlock = 0x800;
    private const int SockNonBlock = 0x800;

    /// <summary>
    /// struct epoll_event is packed on x86-64 (12 bytes, data at offset 4) and naturally aligned
    /// elsewhere (16 bytes, data at offset 8).
    /// </summary>
    public static readonly int EventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;

    public static readonly int EventDataOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;

    /// <summary>Where the event loops can run: Linux on x86-64 or Arm64.</summary>
    public static bool EventLoopsSupported =>
        OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64;

    public static int EpollCreate() => Check(epoll_create1(CloExec), "epoll_create1");

    public static int EventFdCreate() => Check(eventfd(0, CloExec | EfdNonBlock), "eventfd");

    public static int EpollAdd(int epfd, int fd, uint events, ulong data)
    {
        var ev = stackalloc byte[16];
        *(uint*)ev = events;
        *(ulong*)(ev + EventDataOffset) = data;
        return epoll_ctl(epfd, EpollCtlAdd, fd, ev) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    public static void EpollDel(int epfd, int fd)
    {
        var ev = stackalloc byte[16];
        _ = epoll_ctl(epfd, EpollCtlDel, fd, ev);
    }

    public static int Wait(int epfd, byte* events, int max, int timeoutMs) => epoll_wait(epfd, events, max, timeoutMs);

    public static void Signal(int eventFd)
    {
        ulong one = 1;
        _ = write(eventFd, &one, 8);
    }

    public static void Drain(int eventFd)
    {
        ulong value;
        _ = read(eventFd, &value, 8);
    }

    public static int Close(int fd) => close(fd);

    /// <summary>Accepts one pending connection as a non-blocking, close-on-exec descriptor; -1 with errno set when none.</summary>
    public static int Accept(nint listenFd) => accept4((int)listenFd, null, null, SockNonBlock | CloExec);

    public static nint Recv(nint fd, byte* buffer, nint length) => recv((int)fd, buffer, length, MsgDontWait);

    public static nint Send(nint fd, byte* buffer, nint length) => send((int)fd, buffer, length, MsgDontWait | MsgNoSignal);

    /// <summary>Ends the send side (FIN); false when the connection is gone already (no exception on that common path).</summary>
    public static bool ShutdownSend(nint fd) => shutdown((int)fd, 1) == 0;

    /// <summary>setsockopt with an int value; false (errno set) when the socket refused it.</summary>
    public static bool SetOption(nint fd, int level, int name, int value) => setsockopt((int)fd, level, name, &value, sizeof(int)) == 0;

    /// <summary>A hard close from now on: close() resets the connection, dropping anything unsent (SO_LINGER 0).</summary>
    public static bool SetResetOnClose(nint fd)
    {
        var linger = stackalloc int[2] { 1, 0 }; // struct linger { int l_onoff; int l_linger; }
        return setsockopt((int)fd, SolSocket, SoLinger, linger, 2 * sizeof(int)) == 0;
    }

    public const int SolSocket = 1;
    public const int SoLinger = 13;
    public const int SoRcvBuf = 8;
    public const int IpProtoTcp = 6;
    public const int TcpNoDelay = 1;

    /// <summary>
    /// The peer's IP address as text, or null. Asked of the kernel directly: Socket.RemoteEndPoint
    /// would keep an endpoint and an address object alive for the connection's lifetime.
    /// </summary>
    public static string? PeerAddress(nint fd)
    {
        var storage = stackalloc byte[128];
        var length = 128;
        if (getpeername((int)fd, storage, &length) != 0)
        {
            return null;
        }

        var family = *(ushort*)storage;
        return family switch
        {
            2 => new System.Net.IPAddress(new ReadOnlySpan<byte>(storage + 4, 4)).ToString(), // AF_INET: sin_addr
            10 => new System.Net.IPAddress(new ReadOnlySpan<byte>(storage + 8, 16)).ToString(), // AF_INET6: sin6_addr
            _ => null,
        };
    }

    private static int Check(int result, string call) =>
        result >= 0 ? result : throw new IOException($"{call} failed: errno {Marshal.GetLastPInvokeError()}");

    /// <summary>
    /// glibc: gives the free memory at the top of the main heap and inside every thread's arena back
    /// to the system. The JIT's scratch memory from compiling the hot paths stays in those arenas
    /// otherwise, counted in the process's resident memory. Does nothing (false) off glibc.
    /// </summary>
    public static bool TrimNativeHeap()
    {
        try
        {
            return malloc_trim(0) != 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [LibraryImport("libc")]
    private static partial int malloc_trim(nuint pad);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_create1(int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_ctl(int epfd, int op, int fd, byte* ev);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_wait(int epfd, byte* events, int maxevents, int timeout);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int eventfd(uint initval, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint read(int fd, void* buffer, nint count);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint write(int fd, void* buffer, nint count);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int accept4(int fd, void* address, void* addressLength, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint recv(int fd, byte* buffer, nint length, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int shutdown(int fd, int how);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getpeername(int fd, byte* address, int* addressLength);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint send(int fd, byte* buffer, nint length, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setsockopt(int fd, int level, int name, void* value, int length);
}
