using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Jobs;

/// <summary>Firmware images: streamed uploads checked against their SHA-256, pre-signed downloads with ranges (curl), links in job documents.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class FirmwareTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task An_uploaded_image_downloads_by_its_link_in_ranges_and_a_job_hands_the_link_to_its_device()
    {
        var name = TrellisHost.Unique("fw") + ".bin";
        var image = RandomNumberGenerator.GetBytes(3 * 1024 * 1024 + 17);
        var path = Path.Combine(host.DataDirectory, name);
        await File.WriteAllBytesAsync(path, image, Ct);

        var uploaded = await TrellisCli.RunAsync(host, ["firmware", "upload", name, path, "--description", "lamp 2.1.0", "--output", "json"], Ct);
        Assert.True(uploaded.ExitCode == 0, uploaded.Output);
        var record = JsonNode.Parse(uploaded.Stdout)!;
        Assert.Equal((Convert.ToHexStringLower(SHA256.HashData(image)), (long)image.Length), (record["sha256"]!.GetValue<string>(), record["size"]!.GetValue<long>()));
        Assert.Equal(1, (await TrellisCli.RunAsync(host, ["firmware", "upload", name, path], Ct)).ExitCode); // the name is taken

        // The whole image, a range of it (a resumed download), and a range past its end.
        var url = (await TrellisCli.RunAsync(host, ["firmware", "url", name, "--expires-in", "300"], Ct)).Stdout.Trim();
        Assert.StartsWith("http://localhost:", url, StringComparison.Ordinal);
        var whole = Path.Combine(host.DataDirectory, name + ".whole");
        Assert.Equal("200", await CurlAsync(url, whole));
        Assert.Equal(image, await File.ReadAllBytesAsync(whole, Ct));
        var part = Path.Combine(host.DataDirectory, name + ".part");
        Assert.Equal("206", await CurlAsync(url, part, "-r", "1000000-1999999"));
        Assert.Equal(image[1_000_000..2_000_000], await File.ReadAllBytesAsync(part, Ct));
        Assert.Equal("416", await CurlAsync(url, part, "-r", $"{image.Length + 10}-"));

        // A changed link, and a link that expired (signed with the server's own key, an hour ago).
        Assert.Equal("403", await CurlAsync(url[..^4] + "0000", part));
        var sha = record["sha256"]!.GetValue<string>();
        var expired = DateTimeOffset.UtcNow.AddHours(-1).ToUnixTimeSeconds();
        var key = await File.ReadAllBytesAsync(Path.Combine(host.DataDirectory, "presign.key"), Ct);
        var signature = Convert.ToHexStringLower(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{name}\n{sha}\n{expired.ToString(CultureInfo.InvariantCulture)}")));
        var old = $"{url[..url.IndexOf('?', StringComparison.Ordinal)]}?sha256={sha}&expires={expired.ToString(CultureInfo.InvariantCulture)}&signature={signature}";
        Assert.Equal("403", await CurlAsync(old, part));
        Assert.Contains("expired", await File.ReadAllTextAsync(part, Ct), StringComparison.Ordinal);

        // A job whose document links the image: the device gets a working link; an unknown image is refused.
        var thing = TrellisHost.Unique("lamp");
        var job = TrellisHost.Unique("ota");
        var document = $$"""{"operation":"install","files":[{"url":"${aws:iot:s3-presigned-url:firmware/{{name}}}","sha256":"{{sha}}"}]}""";
        var r = await host.IotCallsAsync([
            ("create_thing", new { thingName = thing }),
            ("create_job", new { jobId = job, targets = new[] { $"arn:aws:iot:us-east-1:000000000000:thing/{thing}" }, document, presignedUrlConfig = new { expiresInSec = 600 } }),
            ("create_job", new { jobId = TrellisHost.Unique("ota"), targets = new[] { $"arn:aws:iot:us-east-1:000000000000:thing/{thing}" }, document = """{"url":"${aws:iot:s3-presigned-url:firmware/no-such-image}"}""" }),
            ("jobs-data:start_next_pending_job_execution", new { thingName = thing }),
            ("get_job_document", new { jobId = job }),
        ], Ct);
        Assert.Equal(200, r[1]!["status"]!.GetValue<int>());
        Assert.Equal((404, "ResourceNotFoundException"), (r[2]!["status"]!.GetValue<int>(), r[2]!["error"]!.GetValue<string>()));
        var link = JsonNode.Parse(r[3]!["body"]!["execution"]!["jobDocument"]!.GetValue<string>())!["files"]![0]!["url"]!.GetValue<string>();
        Assert.Contains("/firmware/" + name + "?", link, StringComparison.Ordinal);
        Assert.Equal("200", await CurlAsync(link, whole));
        Assert.Equal(image, await File.ReadAllBytesAsync(whole, Ct));
        Assert.Contains("${aws:iot:s3-presigned-url:", r[4]!["body"]!["document"]!.GetValue<string>(), StringComparison.Ordinal); // the operator sees the placeholder

        // Deleted: gone from the list, and its links find nothing.
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["firmware", "delete", name], Ct)).ExitCode);
        Assert.Equal(1, (await TrellisCli.RunAsync(host, ["firmware", "describe", name], Ct)).ExitCode);
        Assert.Equal("404", await CurlAsync(url, part));
    }

    [Fact]
    public async Task An_upload_whose_bytes_do_not_match_its_signed_hash_is_refused_and_nothing_is_kept()
    {
        var name = TrellisHost.Unique("fw") + ".bin";
        var sent = RandomNumberGenerator.GetBytes(200_000);
        var declared = Convert.ToHexStringLower(SHA256.HashData(sent[..^1])); // the hash of a truncated image
        var answer = await PutAsync(name, sent, declared);
        Assert.Equal(400, answer);
        var listed = await TrellisCli.RunAsync(host, ["firmware", "describe", name], Ct);
        Assert.Equal(1, listed.ExitCode);
        Assert.Empty(Directory.GetFiles(Path.Combine(host.DataDirectory, "firmware"), ".upload-*"));

        // Without a signed hash the upload is refused before a byte is read.
        Assert.Equal(403, await PutAsync(name, sent, null));
    }

    /// <summary>A signed PUT of <paramref name="body"/> declaring <paramref name="sha256"/> (or no hash at all).</summary>
    private async Task<int> PutAsync(string name, byte[] body, string? sha256)
    {
        using var http = new HttpClient();
        using var request = host.AdminSignedRequest(HttpMethod.Put, "/api/firmware/" + name, body, "application/octet-stream", sha256 ?? "UNSIGNED-PAYLOAD");
        using var response = await http.SendAsync(request, Ct);
        return (int)response.StatusCode;
    }

    /// <summary>curl of <paramref name="url"/> into <paramref name="output"/>; the HTTP status.</summary>
    private static async Task<string> CurlAsync(string url, string output, params string[] extra)
    {
        var result = await ExternalTool.RunAsync("curl", ["-s", "-o", output, "-w", "%{http_code}", .. extra, url], Timeout, cancellationToken: Ct);
        return result.Stdout.Trim();
    }
}
