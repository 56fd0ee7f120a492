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
}
