using System.Globalization;
using System.Net;

namespace Trellis.Server;

/// <summary>Parses HOST:PORT listener settings ("0.0.0.0:1883", "127.0.0.1:0", ":8080", "8080", "off").</summary>
public static class ListenAddress
{
    public static IPEndPoint? Parse(string value, string setting)
    {
        if (string.IsNullOrWhiteSpace(value) || value.Equals("off", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var colon = value.LastIndexOf(':');
        var host = colon < 0 ? "0.0.0.0" : value[..colon].Trim('[', ']');
        var portText = colon < 0 ? value : value[(colon + 1)..];
        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535)
        {
            throw new ArgumentException($"{setting}: '{value}' is not HOST:PORT (port 0-65535, 0 = any free port).");
        }

        if (host.Length == 0 || host == "*")
        {
            host = "0.0.0.0";
        }

        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            host = "127.0.0.1";
        }

        if (!IPAddress.TryParse(host, out var address))
        {
            throw new ArgumentException($"{setting}: '{host}' is not an IP address; use 0.0.0.0 to listen on all interfaces.");
        }

        return new IPEndPoint(address, port);
    }

    /// <summary>
    /// Throws an <see cref="InvalidOperationException"/> naming the first listener whose port is in
    /// use (port 0, "any free port", is never in use). Each port is bound exclusively and released.
    /// </summary>
    public static void EnsureFree(IEnumerable<(IPEndPoint? At, string Flag, bool Udp)> listeners)
    {
        foreach (var (at, flag, udp) in listeners)
        {
            if (at is null || at.Port == 0)
            {
                continue;
            }

            using var socket = new System.Net.Sockets.Socket(at.AddressFamily,
                udp ? System.Net.Sockets.SocketType.Dgram : System.Net.Sockets.SocketType.Stream,
                udp ? System.Net.Sockets.ProtocolType.Udp : System.Net.Sockets.ProtocolType.Tcp)
            { ExclusiveAddressUse = true };
            try
            {
                socket.Bind(at);
            }
            catch (System.Net.Sockets.SocketException e) when (e.SocketErrorCode is System.Net.Sockets.SocketError.AddressAlreadyInUse or System.Net.Sockets.SocketError.AccessDenied)
            {
                var what = e.SocketErrorCode == System.Net.Sockets.SocketError.AccessDenied ? "may not be used by this user (ports under 1024 need privileges)" : "is in use by another program (another trellis serve or broker?)";
                throw new InvalidOperationException($"{(udp ? "UDP" : "TCP")} port {at} {what}: give {flag} another HOST:PORT, or stop that program.", e);
            }
            catch (System.Net.Sockets.SocketException e) when (e.SocketErrorCode == System.Net.Sockets.SocketError.AddressNotAvailable)
            {
                throw new InvalidOperationException($"{flag} {at}: this machine has no address {at.Address}: give an address of one of its interfaces, or 0.0.0.0.", e);
            }
        }
    }
}
