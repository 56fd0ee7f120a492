using System.IO.Pipelines;
using System.Net.Sockets;

namespace Trellis.Broker.Hosting;

/// <summary>
/// A TCP connection as a duplex pipe, built for many idle clients: it waits for data with a
/// zero-byte receive, so an idle connection holds no receive buffer, and writes through a stream
/// pipe writer that rents a buffer only while there is something to send. Used where the event
/// loops are not (other systems, or <see cref="BrokerOptions.EventLoops"/> = 0).
/// </summary>
internal sealed class SocketTransport : IMqttTransport
{
    // Back-pressure: past 256 KiB unread, stop reading the socket so TCP slows the sender.
    // The broker's read loop resumes inline when data is flushed: one thread-pool hop per
    // receive instead of two (the socket completion already runs on the pool).
    private static readonly PipeOptions InputOptions = new(
        readerScheduler: PipeScheduler.Inline,
        pauseWriterThreshold: 256 * 1024,
        resumeWriterThreshold: 128 * 1024,
        minimumSegmentSize: 4096,
        useSynchronizationContext: false);

    private readonly Socket _socket;
    private readonly Pipe _input = new(InputOptions);
    private readonly NetworkStream _stream;
    private Task? _receiving;

    public SocketTransport(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        Output = PipeWriter.Create(_stream, new StreamPipeWriterOptions(minimumBufferSize: 4096, leaveOpen: true));
    }

    public PipeReader Input => _input.Reader;

    public PipeWriter Output { get; }

    public void Start() => _receiving = ReceiveLoopAsync();

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

        _socket.Dispose();
    }

    /// <summary>Graceful close after the broker finished: what was written is sent, then FIN.</summary>
    public async ValueTask DisposeAsync()
    {
        // The receive loop ends first (its pending receive is cancelled by the shutdown below on the
        // send side only when the client closes too): stop it, then linger (see LingeringClose).
        LingeringClose.Start(_socket);
        if (_receiving is not null)
        {
            await _receiving;
        }

        await _stream.DisposeAsync();
    }

    private async Task ReceiveLoopAsync()
    {
        var writer = _input.Writer;
        try
        {
            while (true)
            {
                // Zero-byte receive: completes when data is readable, without holding a buffer.
                await _socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None);
                var memory = writer.GetMemory(4096);
                var received = await _socket.ReceiveAsync(memory, SocketFlags.None);
                if (received == 0)
                {
                    break;
                }

                writer.Advance(received);
                var flush = await writer.FlushAsync();
                if (flush.IsCompleted || flush.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        finally
        {
            await writer.CompleteAsync();
        }
    }
}
