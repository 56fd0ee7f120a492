using System.Net.Sockets;

namespace Trellis.Broker.Hosting;

/// <summary>
/// A graceful close that lets the client read what it was sent. Closing a socket whose receive
/// buffer still holds unread bytes makes the kernel answer with a reset, and a client still
/// sending (PUBRELs for the PUBRECs it is reading, say) then fails on its next write, often before
/// it has read the final DISCONNECT that says why. So: send FIN (shutdown of the send side), read
/// and discard what keeps arriving until the client closes too or <see cref="Limit"/> passes, then
/// release the socket. Bounded in time and in memory (one small buffer).
/// </summary>
internal static class LingeringClose
{
    /// <summary>How long a closed connection keeps draining what its client still sends.</summary>
    public static readonly TimeSpan Limit = TimeSpan.FromSeconds(2);

    public static void Start(Socket socket)
    {
        if (!ShutdownSend(socket))
        {
            socket.Dispose(); // the client is gone already (it reset or hung up first): nothing to drain
            return;
        }

        // Usually the client has closed already (it sent DISCONNECT and hung up): then what is left
        // is read here and the socket goes now, without a wait on the runtime's socket engine.
        if (DrainNow(socket))
        {
            socket.Dispose();
            return;
        }

        _ = DrainAsync(socket);
    }

    private static bool ShutdownSend(Socket socket)
    {
        var added = false;
        try
        {
            socket.SafeHandle.DangerousAddRef(ref added);
            return Native.ShutdownSend(socket.SafeHandle.DangerousGetHandle());
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
        finally
        {
            if (added)
            {
                socket.SafeHandle.DangerousRelease();
            }
        }
    }

    /// <summary>Reads what is there without waiting; true when the client's end of stream (or an error) came.</summary>
    private static unsafe bool DrainNow(Socket socket)
    {
        var added = false;
        try
        {
            socket.SafeHandle.DangerousAddRef(ref added);
            var fd = socket.SafeHandle.DangerousGetHandle();
            var buffer = stackalloc byte[512];
            for (var i = 0; i < 16; i++)
            {
                var n = Native.Recv(fd, buffer, 512);
                if (n > 0)
                {
                    continue;
                }

                return n == 0 || System.Runtime.InteropServices.Marshal.GetLastPInvokeError() is not (Native.EAGAIN or Native.EINTR);
            }

            return false; // still sending: drain while it lasts
        }
        catch (ObjectDisposedException)
        {
            return true;
        }
        finally
        {
            if (added)
            {
                socket.SafeHandle.DangerousRelease();
            }
        }
    }

    private static async Task DrainAsync(Socket socket)
    {
        var buffer = new byte[512];
        using var deadline = new CancellationTokenSource(Limit);
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, deadline.Token) > 0)
            {
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }
        finally
        {
            socket.Dispose();
        }
    }
}
