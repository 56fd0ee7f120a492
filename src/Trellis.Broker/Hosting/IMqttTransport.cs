using System.IO.Pipelines;

namespace Trellis.Broker.Hosting;

/// <summary>What a connection needs of its transport: the pipes, a hard close, and a graceful one once the broker is done.</summary>
internal interface IConnectionTransport : IDuplexPipe, IAsyncDisposable
{
    /// <summary>Hard close: reset the connection, dropping anything unsent.</summary>
    void Abort();

    /// <summary>
    /// The client sent DISCONNECT: it reads nothing more (MQTT: it closes the connection next), so
    /// the close need not wait for what it still has in flight.
    /// </summary>
    void PeerDisconnected()
    {
    }

    /// <summary>
    /// An API user the host has already verified (the web console's session on its WebSocket), who
    /// connects without a user name and password of its own; null for every other connection.
    /// </summary>
    string? VerifiedUser => null;
}

/// <summary>A plain-TCP client connection as the listener serves it.</summary>
internal interface IMqttTransport : IConnectionTransport
{
    /// <summary>Starts reading the socket into <see cref="IDuplexPipe.Input"/>.</summary>
    void Start();
}

/// <summary>A connection whose host (Kestrel, a WebSocket request) owns its life: the broker only reads, writes and aborts.</summary>
internal sealed class HostedTransport(IDuplexPipe pipe, Action abort, string? verifiedUser = null) : IConnectionTransport
{
    public string? VerifiedUser => verifiedUser;

    public PipeReader Input => pipe.Input;

    public PipeWriter Output => pipe.Output;

    public void Abort() => abort();

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
