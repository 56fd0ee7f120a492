using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Coap;

/// <summary>CoAP devices: libcoap's coap-client against the server's CoAP endpoint, MQTT and boto3 on the other side; raw datagrams for what no client sends.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class CoapTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A CoAP device's policy: its own topics and shadow, with its thing name as its client id.</summary>
    internal const string DevicePolicy = """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
          {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["arn:aws:iot:*:*:topic/devices/${iot:Connection.Thing.ThingName}/*","arn:aws:iot:*:*:topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*"]},
          {"Effect":"Allow","Action":"iot:Subscribe","Resource":["arn:aws:iot:*:*:topicfilter/devices/${iot:Connection.Thing.ThingName}/*","arn:aws:iot:*:*:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*"]},
          {"Effect":"Deny","Action":"iot:Receive","Resource":"arn:aws:iot:*:*:topic/devices/${iot:Connection.Thing.ThingName}/secret"}]}
        """;

    [Fact]
    public async Task A_device_publishes_and_keeps_its_shadow_over_coap_under_its_own_policies()
    {
        var (thing, token) = await DeviceAsync("coap");
        string Uri(string path, string query = "") => $"coap://127.0.0.1:{host.Server.Port("coap")}/{path}?thing={thing}&token={token}{query}";

        // Published over CoAP, received over MQTT.
        var watcher = TrellisHost.Unique("coapw");
        using var sub = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(watcher), "-t", $"devices/{thing}/#", "-q", "1", "-v"]);
        await host.WaitSubscribedAsync(watcher, sub);
        var published = await CoapAsync("-m", "post", "-e", "21.5", Uri($"topics/devices/{thing}/temp", "&qos=1"));
        Assert.True(published.ExitCode == 0, published.Output);
        Assert.True(await sub.WaitForLineAsync(l => l == $"devices/{thing}/temp 21.5", Timeout, Ct), "not received over MQTT: " + string.Join('|', sub.Lines));

        // Its policy holds: another device's topic, a wildcard, a wrong token, an unknown resource.
        Assert.Contains("4.03", (await CoapAsync("-m", "post", "-e", "x", Uri("topics/devices/someone-else/temp"))).Output, StringComparison.Ordinal);
        Assert.Contains("4.00", (await CoapAsync("-m", "post", "-e", "x", Uri($"topics/devices/{thing}/%2B"))).Output, StringComparison.Ordinal);
        var wrongToken = $"coap://127.0.0.1:{host.Server.Port("coap")}/topics/devices/{thing}/temp?thing={thing}&token={token.Split('.')[0]}.wrong";
        Assert.Contains("4.01", (await CoapAsync("-m", "post", "-e", "x", wrongToken)).Output, StringComparison.Ordinal);
        Assert.Contains("4.04", (await CoapAsync(Uri("nothing/here"))).Output, StringComparison.Ordinal);

        // The shadow: update, read back over CoAP and through boto3's iot-data, delete.
        var updated = await CoapAsync("-m", "post", "-t", "50", "-e", """{"state":{"reported":{"temp":21.5}}}""", Uri($"things/{thing}/shadow"));
        Assert.True(updated.ExitCode == 0 && updated.Output.Contains("\"version\":1", StringComparison.Ordinal), updated.Output);
        var read = await CoapAsync(Uri($"things/{thing}/shadow"));
        Assert.Equal(21.5, JsonNode.Parse(read.Output.Trim())!["state"]!["reported"]!["temp"]!.GetValue<double>());
        var viaAws = await host.IotCallsAsync([("data:get_thing_shadow", new { thingName = thing })], Ct);
        Assert.Equal(21.5, viaAws[0]!["body"]!["payload"]!["state"]!["reported"]!["temp"]!.GetValue<double>());
        var stale = await CoapAsync("-m", "post", "-t", "50", "-e", """{"state":{"reported":{"temp":1}},"version":7}""", Uri($"things/{thing}/shadow"));
        Assert.Contains("4.09", stale.Output, StringComparison.Ordinal);
        Assert.True((await CoapAsync("-m", "delete", Uri($"things/{thing}/shadow"))).ExitCode == 0);
        Assert.Contains("4.04", (await CoapAsync(Uri($"things/{thing}/shadow"))).Output, StringComparison.Ordinal);

        // Another thing's shadow is out of its policy.
        Assert.Contains("4.03", (await CoapAsync(Uri("things/someone-else/shadow"))).Output, StringComparison.Ordinal);

        // Discovery lists what this device may use.
        var links = await CoapAsync(Uri(".well-known/core"));
        Assert.Contains($"</things/{thing}/shadow>", links.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_observer_is_notified_of_messages_on_its_filter_and_of_its_shadows_deltas_until_it_resets()
    {
        var (thing, token) = await DeviceAsync("coapobs");
        string Uri(string path) => $"coap://127.0.0.1:{host.Server.Port("coap")}/{path}?thing={thing}&token={token}";
        var observations = host.Server.Services.GetRequiredService<Trellis.Server.CoapObservations>();
        var before = observations.Count;

        var reported = await host.IotCallsAsync([("data:update_thing_shadow", new { thingName = thing, payload = new { state = new { reported = new { temp = 21 } } } })], Ct);
        Assert.Equal(200, reported[0]!["status"]!.GetValue<int>());

        // Two observations: a topic filter and the shadow (its deltas). coap-client keeps each open for
        // its duration and appends each notification's payload to its output file, with no separator.
        var topicsOut = Path.Combine(Path.GetTempPath(), $"{thing}-topics.out");
        var shadowOut = Path.Combine(Path.GetTempPath(), $"{thing}-shadow.out");
        string Received(string file) => File.Exists(file) ? File.ReadAllText(file) : string.Empty;
        using var topics = ExternalTool.StartBackground("coap-client-notls", ["-s", "20", "-B", "20", "-o", topicsOut, Uri($"topics/devices/{thing}/%2B")]);
        using var shadow = ExternalTool.StartBackground("coap-client-notls", ["-s", "20", "-B", "20", "-o", shadowOut, Uri($"things/{thing}/shadow")]);
        Assert.True(await Eventually.TrueAsync(() => observations.Count >= before + 2, Timeout, Ct), $"{observations.Count - before} of the 2 observations registered: " + topics.Stderr + shadow.Stderr);

        // Messages from an MQTT publisher: on the filter, outside it, one its policy denies it to receive, and a last one.
        foreach (var (topic, text) in new[] { ($"devices/{thing}/temp", "21.5"), ($"devices/{thing}/a/b", "deeper"), ($"devices/{thing}/secret", "hidden"), ($"devices/{thing}/end", "done") })
        {
            var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("coapop")), "-t", topic, "-m", text, "-q", "1"], Timeout, cancellationToken: Ct);
            Assert.True(pub.ExitCode == 0, pub.Output);
        }

        Assert.True(await Eventually.TrueAsync(() => Received(topicsOut).EndsWith("done", StringComparison.Ordinal), Timeout, Ct), "notifications: " + Received(topicsOut) + topics.Stderr);
        Assert.Equal("21.5done", Received(topicsOut)); // not "deeper" (outside the filter), not "hidden" (its policy denies iot:Receive there)

        // The shadow's observer gets the delta that boto3's update makes.
        var update = await host.IotCallsAsync([("data:update_thing_shadow", new { thingName = thing, payload = new { state = new { desired = new { temp = 19 } } } })], Ct);
        Assert.Equal(200, update[0]!["status"]!.GetValue<int>());
        Assert.True(await Eventually.TrueAsync(() => Received(shadowOut).Contains("\"state\":{\"temp\":19}", StringComparison.Ordinal), Timeout, Ct), "shadow notifications: " + Received(shadowOut) + shadow.Stderr);
        File.Delete(topicsOut);
        File.Delete(shadowOut);

        // A Reset in answer to a notification ends the observation (raw datagrams: no client sends one on purpose).
        using var udp = new UdpClient(AddressFamily.InterNetwork);
        udp.Connect(IPAddress.Loopback, host.Server.Port("coap"));
        var identity = new List<(int, byte[])> { (15, System.Text.Encoding.UTF8.GetBytes("thing=" + thing)), (15, System.Text.Encoding.UTF8.GetBytes("token=" + token)) };
        var registered = await ExchangeAsync(udp, Hex(1, 0x0301, [0xEE], [(6, []), (11, "topics"u8.ToArray()), (11, "devices"u8.ToArray()), (11, System.Text.Encoding.UTF8.GetBytes(thing)), (11, "raw"u8.ToArray()), .. identity], []));
        Assert.Equal("61450301EE", Convert.ToHexString(registered.AsSpan(0, 5))); // ACK, 2.05, its message id and token
        var held = observations.Count;
        var ping = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("coapop")), "-t", $"devices/{thing}/raw", "-m", "ping", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(ping.ExitCode == 0, ping.Output);
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        wait.CancelAfter(Timeout);
        var notification = (await udp.ReceiveAsync(wait.Token)).Buffer;
        Assert.Equal("5145", Convert.ToHexString(notification.AsSpan(0, 2))); // NON, 2.05
        Assert.Equal(0xEE, notification[4]);
        await udp.SendAsync(new byte[] { 0x70, 0x00, notification[2], notification[3] }, Ct);
        Assert.True(await Eventually.TrueAsync(() => observations.Count == held - 1, Timeout, Ct), "the Reset did not end the observation");
    }

    [Fact]
    public async Task Malformed_and_repeated_datagrams_get_the_rfcs_answers_and_a_repeat_is_not_run_twice()
    {
        var (thing, token) = await DeviceAsync("coapraw");
        using var udp = new UdpClient(AddressFamily.InterNetwork);
        udp.Connect(IPAddress.Loopback, host.Server.Port("coap"));

        // A token length of 9: a format error; a confirmable one gets a Reset with its message id.
        Assert.Equal("70000102", Convert.ToHexString(await ExchangeAsync(udp, "49010102")));

        // Three bytes: not even a header, so no answer; a ping (an Empty CON) right after still gets its Reset.
        await udp.SendAsync(Convert.FromHexString("400100"), Ct);
        Assert.Equal("70000103", Convert.ToHexString(await ExchangeAsync(udp, "40000103")));

        // An unknown critical option (2049): 4.02 in the ACK, with the request's token.
        var badOption = await ExchangeAsync(udp, Hex(1, 0x0104, [0xAB], [(2049, [1])], []));
        Assert.Equal("61820104AB", Convert.ToHexString(badOption.AsSpan(0, 5)));

        // A critical option that may appear once (Uri-Host) given twice: 4.02. A payload marker with no
        // payload, and an option whose length nibble is the reserved 15: format errors, answered with a Reset.
        var twice = await ExchangeAsync(udp, Hex(1, 0x0107, [0xAE], [(3, "a"u8.ToArray()), (3, "b"u8.ToArray())], []));
        Assert.Equal("61820107AE", Convert.ToHexString(twice.AsSpan(0, 5)));
        Assert.Equal("70000108", Convert.ToHexString(await ExchangeAsync(udp, "40010108FF")));
        Assert.Equal("70000109", Convert.ToHexString(await ExchangeAsync(udp, "40010109BF")));

        // Block-wise mistakes (RFC 7959): a size exponent of 7 is 4.00; a block that follows none is 4.08.
        var identity = new List<(int, byte[])> { (15, System.Text.Encoding.UTF8.GetBytes("thing=" + thing)), (15, System.Text.Encoding.UTF8.GetBytes("token=" + token)) };
        var szx7 = await ExchangeAsync(udp, Hex(1, 0x0105, [0xAC], [(11, "things"u8.ToArray()), (11, System.Text.Encoding.UTF8.GetBytes(thing)), (11, "shadow"u8.ToArray()), (23, [0x07]), .. identity], []));
        Assert.Equal("61800105AC", Convert.ToHexString(szx7.AsSpan(0, 5)));
        var orphan = await ExchangeAsync(udp, Hex(2, 0x0106, [0xAD], [(11, "topics"u8.ToArray()), (11, "devices"u8.ToArray()), (11, System.Text.Encoding.UTF8.GetBytes(thing)), (11, "x"u8.ToArray()), (27, [0x1A]), .. identity], new byte[64]));
        Assert.Equal("61880106AD", Convert.ToHexString(orphan.AsSpan(0, 5)));

        // One CON publish sent twice with the same message id: the same answer twice, one message.
        var watcher = TrellisHost.Unique("coaprw");
        using var sub = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(watcher), "-t", $"devices/{thing}/#", "-q", "1"]);
        await host.WaitSubscribedAsync(watcher, sub);
        var path = new List<(int, byte[])> { (11, "topics"u8.ToArray()), (11, "devices"u8.ToArray()), (11, System.Text.Encoding.UTF8.GetBytes(thing)), (11, "once"u8.ToArray()) };
        path.Add((15, System.Text.Encoding.UTF8.GetBytes("thing=" + thing)));
        path.Add((15, System.Text.Encoding.UTF8.GetBytes("token=" + token)));
        var publish = Hex(2, 0x0200, [0x01, 0x02], path, "first"u8.ToArray());
        var answer = await ExchangeAsync(udp, publish);
        var again = await ExchangeAsync(udp, publish);
        Assert.Equal("624402000102", Convert.ToHexString(answer)[..12]); // ACK with a 2-byte token, 2.04, the same message id and token
        Assert.Equal(answer, again);
        var marker = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("coapm")), "-t", $"devices/{thing}/marker", "-m", "marker", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(marker.ExitCode == 0, marker.Output);
        Assert.True(await sub.WaitForLineAsync(l => l == "marker", Timeout, Ct), "marker not received: " + string.Join('|', sub.Lines));
        Assert.Equal(["first", "marker"], sub.Lines.ToArray());
    }

    [Fact]
    public async Task An_observe_storm_from_one_source_is_held_to_its_share_and_others_are_still_served()
    {
        var (thing, token) = await DeviceAsync("coapstorm");
        var observations = host.Server.Services.GetRequiredService<Trellis.Server.CoapObservations>();
        var before = observations.Count;
        using var udp = new UdpClient(AddressFamily.InterNetwork);
        udp.Connect(IPAddress.Loopback, host.Server.Port("coap"));
        var identity = new List<(int, byte[])> { (15, System.Text.Encoding.UTF8.GetBytes("thing=" + thing)), (15, System.Text.Encoding.UTF8.GetBytes("token=" + token)) };
        List<(int, byte[])> Observe(int i) => [(6, []), (11, "topics"u8.ToArray()), (11, "devices"u8.ToArray()), (11, System.Text.Encoding.UTF8.GetBytes(thing)), (11, System.Text.Encoding.UTF8.GetBytes("s" + i)), .. identity];

        // 300 registrations, each with its own token, as fast as one socket sends them; what UDP loses
        // in the burst is sent again with the same message id, as a CoAP client retransmits (the
        // endpoint answers a repeat from its cache, so nothing registers twice).
        var answers = new Dictionary<int, string>();
        for (var round = 0; round < 5 && answers.Count < 300; round++)
        {
            for (var i = 0; i < 300; i++)
            {
                if (!answers.ContainsKey(0x3000 + i))
                {
                    await udp.SendAsync(Convert.FromHexString(Hex(1, 0x3000 + i, [(byte)(i >> 8), (byte)i], Observe(i), [])), Ct);
                }
            }

            using var quiet = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            try
            {
                while (answers.Count < 300)
                {
                    quiet.CancelAfter(TimeSpan.FromSeconds(2));
                    var answer = (await udp.ReceiveAsync(quiet.Token)).Buffer;
                    answers[(answer[2] << 8) | answer[3]] = $"{answer[1] >> 5}.{answer[1] & 31:D2}";
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        var codes = answers.Values.GroupBy(c => c).ToDictionary(g => g.Key, g => g.Count());
        // Its share (32) was registered and every other one refused with 5.03; none was lost silently.
        Assert.Equal(Trellis.Server.CoapObservations.MaxPerSource, codes.GetValueOrDefault("2.05"));
        Assert.Equal(300 - Trellis.Server.CoapObservations.MaxPerSource, codes.GetValueOrDefault("5.03"));
        Assert.Equal(before + Trellis.Server.CoapObservations.MaxPerSource, observations.Count);

        // Another source (libcoap's client) still registers and is answered.
        var other = await CoapAsync("-s", "1", "-B", "2", $"coap://127.0.0.1:{host.Server.Port("coap")}/topics/devices/{thing}/other?thing={thing}&token={token}");
        Assert.DoesNotContain("5.03", other.Output, StringComparison.Ordinal);
        Assert.True(other.ExitCode == 0, other.Output);

        // Its own observations end one by one as it deregisters (GET with Observe 1).
        for (var i = 0; i < Trellis.Server.CoapObservations.MaxPerSource; i++)
        {
            List<(int, byte[])> stop = [(6, [1]), .. Observe(i).Skip(1)];
            await ExchangeAsync(udp, Hex(1, 0x3400 + i, [(byte)(i >> 8), (byte)i], stop, []));
        }

        Assert.True(await Eventually.TrueAsync(() => observations.Count <= before + 1, Timeout, Ct), $"{observations.Count - before} observations left");
    }

    private async Task<(string Thing, string Token)> DeviceAsync(string prefix)
    {
        var device = await CoapDevice.CreateAsync(host, prefix, DevicePolicy, psk: false, Ct);
        return (device.Thing, device.Token);
    }

    private static Task<ExternalTool.Result> CoapAsync(params string[] args) =>
        ExternalTool.RunAsync("coap-client-notls", ["-B", "5", .. args], Timeout, cancellationToken: Ct);

    /// <summary>A CON request written by hand (RFC 7252 §3): method code, message id, token, options (sorted by number) and payload, as hex.</summary>
    private static string Hex(byte code, int messageId, byte[] token, IEnumerable<(int Number, byte[] Value)> options, byte[] payload)
    {
        var bytes = new List<byte> { (byte)(0x40 | token.Length), code, (byte)(messageId >> 8), (byte)messageId };
        bytes.AddRange(token);
        var last = 0;
        foreach (var (number, value) in options.OrderBy(o => o.Number))
        {
            var delta = number - last;
            last = number;
            var deltaNibble = delta < 13 ? delta : delta < 269 ? 13 : 14;
            var lengthNibble = value.Length < 13 ? value.Length : 13;
            bytes.Add((byte)((deltaNibble << 4) | lengthNibble));
            if (deltaNibble == 13)
            {
                bytes.Add((byte)(delta - 13));
            }
            else if (deltaNibble == 14)
            {
                bytes.Add((byte)((delta - 269) >> 8));
                bytes.Add((byte)(delta - 269));
            }

            if (lengthNibble == 13)
            {
                bytes.Add((byte)(value.Length - 13));
            }

            bytes.AddRange(value);
        }

        if (payload.Length > 0)
        {
            bytes.Add(0xFF);
            bytes.AddRange(payload);
        }

        return Convert.ToHexString(bytes.ToArray());
    }

    private static async Task<byte[]> ExchangeAsync(UdpClient udp, string hex)
    {
        await udp.SendAsync(Convert.FromHexString(hex), Ct);
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        wait.CancelAfter(TimeSpan.FromSeconds(5));
        return (await udp.ReceiveAsync(wait.Token)).Buffer;
    }
}
