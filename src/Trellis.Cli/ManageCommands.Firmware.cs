using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Trellis.Cli;

/// <summary><c>trellis firmware …</c>: firmware images for jobs (upload, sign, deltas, list, describe, a download link, delete).</summary>
internal static partial class ManageCommands
{
    private static Command Firmware()
    {
        var name = new Argument<string>("name") { Description = "Image name, e.g. lamp-2.1.0.bin (letters, digits, '.', '_', '-')" };
        var file = new Argument<FileInfo>("file") { Description = "The image file (streamed, any size up to the server's limit)" };
        var description = new Option<string?>("--description") { Description = "What the image is" };

        var signNow = new Option<bool>("--sign") { Description = "Sign the image with Trellis's code-signing key once it is stored" };
        var upload = new Command("upload", "Upload an image; its SHA-256 is checked on arrival.") { name, file, description, signNow };
        upload.SetAction((r, ct) =>
        {
            var image = r.GetValue(file)!;
            var path = "/api/firmware/" + ApiClient.Segment(r.GetValue(name)!);
            return !image.Exists
                ? Task.FromResult(Usage($"{image.FullName} does not exist"))
                : RunAsync(r, async api =>
                {
                    var uploaded = await api.UploadAsync(path, Query(("description", r.GetValue(description))), image.FullName, ct);
                    return uploaded.Ok && r.GetValue(signNow) ? await api.SendAsync(HttpMethod.Post, path + "/signature", null, null, ct) : uploaded;
                },
                body => AnsiConsole.MarkupLine($"[green]uploaded[/] {Markup.Escape(Text(body["name"]))}: {Text(body["size"])} bytes, sha256 {Text(body["sha256"])}"
                    + (body["signature"] is null ? string.Empty : ", signed") + $"; in a job document: {Markup.Escape(Text(body["placeholder"]))}"));
        });

        var signatureFile = new Option<FileInfo?>("--signature") { Description = "A signature made elsewhere: a file with the DER (or 64-byte r||s) ECDSA P-256 signature of the image's SHA-256, e.g. from openssl dgst -sha256 -sign" };
        var certificateFile = new Option<FileInfo?>("--certificate") { Description = "With --signature: the signer's certificate (PEM) devices verify against" };
        var sign = new Command("sign", "Sign an image (ECDSA P-256) with Trellis's code-signing key, or record a signature made elsewhere after checking it.") { name, signatureFile, certificateFile };
        sign.SetAction(async (r, ct) =>
        {
            JsonObject? body = null;
            if (r.GetValue(signatureFile) is { } sig)
            {
                if (r.GetValue(certificateFile) is not { Exists: true } cert || !sig.Exists)
                {
                    return Usage("--signature needs an existing signature file and --certificate with the signer's PEM certificate");
                }

                body = new JsonObject
                {
                    ["signature"] = Convert.ToBase64String(await File.ReadAllBytesAsync(sig.FullName, ct)),
                    ["certificatePem"] = await File.ReadAllTextAsync(cert.FullName, ct),
                };
            }

            return await RunAsync(r, api => api.SendAsync(HttpMethod.Post, "/api/firmware/" + ApiClient.Segment(r.GetValue(name)!) + "/signature", null, body, ct),
                answer => AnsiConsole.MarkupLine($"[green]signed[/] {Markup.Escape(Text(answer["name"]))} ({Text(answer["signatureAlgorithm"])}): {Text(answer["signature"])}"));
        });

        var signer = new Command("signer", "Print Trellis's code-signing certificate (PEM): give it to devices to verify images.");
        signer.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/api/code-signing/certificate", null, null, ct), body => Console.Write(Text(body["certificatePem"]))));

        var from = new Option<string>("--from") { Description = "The image devices run now", Required = true };
        var delta = new Command("delta", "Make a delta image (zstd patch-from) from the image devices run to this one; devices that run it download the patch.") { name, from };
        delta.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Post, "/api/firmware/" + ApiClient.Segment(r.GetValue(name)!) + "/deltas", Query(("from", r.GetValue(from))), null, ct),
            body =>
            {
                var line = $"{Text(body["fromName"])} -> {r.GetValue(name)}: {Text(body["size"])} bytes instead of {Text(body["fullSize"])} ({Percent(body["saving"])} % saved)";
                AnsiConsole.MarkupLine("[green]delta[/] " + Markup.Escape(line));
            }));

        var list = new Command("list", "List images.");
        list.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/api/firmware", null, null, ct), body => Table(body["firmware"], "name", "size", "sha256", "description")));

        var describe = new Command("describe", "Show an image.") { name };
        describe.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/api/firmware/" + ApiClient.Segment(r.GetValue(name)!), null, null, ct), Fields));

        var expires = new Option<long?>("--expires-in") { Description = "Seconds the link works (60 to 604800; default 3600)" };
        var url = new Command("url", "A pre-signed download link (HTTP ranges supported) for an image.") { name, expires };
        url.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Post, "/api/firmware/" + ApiClient.Segment(r.GetValue(name)!) + "/url",
            Query(("expiresInSec", r.GetValue(expires)?.ToString(CultureInfo.InvariantCulture))), null, ct), body => Console.WriteLine(Text(body["url"]))));

        var delete = new Command("delete", "Delete an image.") { name };
        delete.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Delete, "/api/firmware/" + ApiClient.Segment(r.GetValue(name)!), null, null, ct),
            _ => AnsiConsole.MarkupLine("[green]deleted[/]")));

        static string Percent(JsonNode? share) => (share!.GetValue<double>() * 100).ToString("0.0", CultureInfo.InvariantCulture);

        return Group("firmware", "Firmware images for jobs: a job document links one with ${aws:iot:s3-presigned-url:firmware/NAME}.", [upload, sign, signer, delta, list, describe, url, delete]);
    }
}
