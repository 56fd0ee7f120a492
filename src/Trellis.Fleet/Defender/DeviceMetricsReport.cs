using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Trellis.Registry.Provisioning;

namespace Trellis.Fleet.Defender;

/// <summary>
/// A device-side metrics report (AWS's metrics document), as published on
/// <c>$aws/things/{thing}/defender/metrics/json|cbor</c>, with the long or the short field names.
/// </summary>
public sealed record DeviceMetricsReport(
    long ReportId,
    IReadOnlyDictionary<string, double> Numbers,
    IReadOnlyDictionary<string, IReadOnlyCollection<int>> Ports,
    IReadOnlyCollection<IPAddress>? Destinations)
{
    /// <summary>The report, or why it was refused (an AWS error code and a message naming the field).</summary>
    public static DeviceMetricsReport? Parse(ReadOnlyMemory<byte> payload, bool cbor, out string errorCode, out string error)
    {
        errorCode = "InvalidPayload";
        JsonNode? root;
        if (cbor)
        {
            if (!CborJson.TryDecode(payload, out root, out error))
            {
                error = "not valid CBOR: " + error;
                return null;
            }
        }
        else
        {
            try
            {
                root = JsonNode.Parse(payload.Span);
            }
            catch (JsonException e)
            {
                error = "not valid JSON: " + e.Message;
                return null;
            }
        }

        try
        {
            return Read(root, ref errorCode, out error);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException or ArgumentException)
        {
            error = e.Message;
            return null;
        }
    }

    private static DeviceMetricsReport? Read(JsonNode? root, ref string errorCode, out string error)
    {
        if (root is not JsonObject document)
        {
            error = "the report must be an object with header and metrics.";
            return null;
        }

        var unknown = document.Select(p => p.Key).FirstOrDefault(k => k is not ("header" or "hed" or "metrics" or "met" or "custom_metrics" or "cmet"));
        if (unknown is not null)
        {
            error = $"unknown member '{unknown}': a report holds header, metrics and custom_metrics.";
            return null;
        }

        if (Member(document, "header", "hed") is not JsonObject header)
        {
            errorCode = "MissingHeader";
            error = "the report has no header (header.report_id and header.version).";
            return null;
        }

        if (Integer(Member(header, "report_id", "rid")) is not { } reportId || reportId < 0)
        {
            errorCode = "InvalidHeader";
            error = "header.report_id must be a non-negative integer (an epoch timestamp is usual).";
            return null;
        }

        if (Member(header, "version", "v") is not JsonValue version || !version.TryGetValue<string>(out var v) || v != "1.0")
        {
            errorCode = "InvalidHeader";
            error = "header.version must be \"1.0\".";
            return null;
        }

        if (Member(document, "metrics", "met") is not JsonObject metrics)
        {
            error = "the report has no metrics object.";
            return null;
        }

        var numbers = new Dictionary<string, double>(StringComparer.Ordinal);
        var ports = new Dictionary<string, IReadOnlyCollection<int>>(StringComparer.Ordinal);
        List<IPAddress>? destinations = null;
        foreach (var (key, value) in metrics)
        {
            switch (key)
            {
                case "listening_tcp_ports" or "tp":
                    ReadPorts(value, "tcp", numbers, ports);
                    break;
                case "listening_udp_ports" or "up":
                    ReadPorts(value, "udp", numbers, ports);
                    break;
                case "network_stats" or "ns":
                    var stats = Object(value, "metrics.network_stats");
                    Count(stats, "bytes_in", "bi", "aws:all-bytes-in", numbers);
                    Count(stats, "bytes_out", "bo", "aws:all-bytes-out", numbers);
                    Count(stats, "packets_in", "pi", "aws:all-packets-in", numbers);
                    Count(stats, "packets_out", "po", "aws:all-packets-out", numbers);
                    break;
                case "tcp_connections" or "tc":
                    var established = Object(Member(Object(value, "metrics.tcp_connections"), "established_connections", "ec"), "metrics.tcp_connections.established_connections");
                    var connections = Member(established, "connections", "cs") as JsonArray ?? [];
                    destinations = [];
                    foreach (var connection in connections)
                    {
                        var remote = Member(Object(connection, "a connection"), "remote_addr", "rad")?.GetValue<string>()
                            ?? throw new FormatException("each established connection needs remote_addr.");
                        destinations.Add(Endpoint(remote));
                    }

                    numbers["aws:num-established-tcp-connections"] = Member(established, "total", "t") is { } total ? Integer(total) ?? throw new FormatException("tcp_connections total must be an integer.") : connections.Count;
                    break;
                default:
                    error = $"unknown metric '{key}' in metrics.";
                    return null;
            }
        }

        error = string.Empty;
        return new DeviceMetricsReport(reportId, numbers, ports, destinations);
    }

    private static void ReadPorts(JsonNode? value, string protocol, Dictionary<string, double> numbers, Dictionary<string, IReadOnlyCollection<int>> ports)
    {
        var listening = Object(value, $"metrics.listening_{protocol}_ports");
        var list = new HashSet<int>();
        foreach (var entry in Member(listening, "ports", "pts") as JsonArray ?? [])
        {
            var port = Integer(Member(Object(entry, "a port"), "port", "pt")) ?? throw new FormatException($"each listening {protocol} port needs port.");
            if (port is < 0 or > 65535)
            {
                throw new FormatException($"port {port} is not between 0 and 65535.");
            }

            list.Add((int)port);
        }

        ports[$"aws:listening-{protocol}-ports"] = list;
        numbers[$"aws:num-listening-{protocol}-ports"] = Member(listening, "total", "t") is { } total ? Integer(total) ?? throw new FormatException($"listening {protocol} ports total must be an integer.") : list.Count;
    }

    private static void Count(JsonObject stats, string name, string shortName, string metric, Dictionary<string, double> numbers)
    {
        if (Member(stats, name, shortName) is { } value)
        {
            var count = Integer(value) ?? throw new FormatException($"network_stats.{name} must be an integer.");
            numbers[metric] = count >= 0 ? count : throw new FormatException($"network_stats.{name} cannot be negative.");
        }
    }

    /// <summary>The address of "host:port", "[v6]:port" or a bare address.</summary>
    private static IPAddress Endpoint(string text)
    {
        if (IPEndPoint.TryParse(text, out var endpoint))
        {
            return endpoint.Address;
        }

        throw new FormatException($"remote_addr '{text}' is not an address and port.");
    }

    /// <summary>An integer however the parser kept it (JSON numbers, CBOR integers), or null.</summary>
    private static long? Integer(JsonNode? node)
    {
        if (node is not JsonValue value)
        {
            return null;
        }

        if (value.TryGetValue<long>(out var l))
        {
            return l;
        }

        if (value.TryGetValue<int>(out var i))
        {
            return i;
        }

        if (value.TryGetValue<ulong>(out var u) && u <= long.MaxValue)
        {
            return (long)u;
        }

        return value.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) < 9e15 ? (long)d : null;
    }

    private static JsonObject Object(JsonNode? node, string what) => node as JsonObject ?? throw new FormatException($"{what} must be an object.");

    private static JsonNode? Member(JsonObject o, string name, string shortName) => o[name] ?? o[shortName];
}
