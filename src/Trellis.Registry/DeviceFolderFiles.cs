using System.Globalization;
using System.Text.Json.Nodes;

namespace Trellis.Registry;

/// <summary>
/// The texts of a device folder beside its certificate, key and CA, as <c>trellis provision</c>
/// writes them and the console's device bundles carry them: <c>device.json</c> and <c>connect.sh</c>.
/// </summary>
public static class DeviceFolderFiles
{
    /// <summary>DescribeEndpoint's MQTT-over-TLS address (<c>host</c> or <c>host:port</c>) as host and port.</summary>
    public static (string Host, int Port) Endpoint(string address)
    {
        var colon = address.LastIndexOf(':');
        return colon > 0 ? (address[..colon], int.Parse(address.AsSpan(colon + 1), CultureInfo.InvariantCulture)) : (address, 8883);
    }

    /// <summary><c>device.json</c>: the thing's name and where it connects (<c>trellis gateway --identity</c>, <c>pub</c>, <c>sub</c> and the samples read it).</summary>
    public static string DeviceJson(string thing, string host, int port) =>
        new JsonObject { ["thingName"] = thing, ["host"] = host, ["port"] = port }.ToJsonString() + "\n";

    /// <summary><c>connect.sh</c>: one message on the thing's own topic, read back, over TLS with its certificate.</summary>
    public static string ConnectScript(string thing, string host, int port) => string.Create(CultureInfo.InvariantCulture, $"""
        #!/bin/sh
        # {thing}: publish one message on its own topic and read it back, over TLS with its certificate.
        cd "$(dirname "$0")"
        mosquitto_rr -h {host} -p {port} --cafile ca.pem --cert {thing}.cert.pem --key {thing}.private.key -i {thing} \
          -t devices/{thing}/hello -e devices/{thing}/hello -m 'hello from {thing}' -W 10

        """);
}
