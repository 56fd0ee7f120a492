using System.IO.Pipelines;

namespace Trellis.Broker.Hosting;

/// <summary>A plain-TCP client connection as the listener serves it.</summary>
internal interface IMqttTransport : IDuplexPipe, IAsyncDisposable
{
    /// <summary>Starts reading the socket into <see cref="IDuplexPipe.Input"/>.</summary>
    void Start();

    /// <summary>Hard close: reset the connection, dropping anything unsent.</summary>
    void Abort();
}
