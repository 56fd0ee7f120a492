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
        try
        {
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            socket.Dispose();
            return;
        }

        _ = DrainAsync(socket);
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
