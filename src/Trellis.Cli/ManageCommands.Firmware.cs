using System.CommandLine;
using System.Globalization;
using Spectre.Console;

namespace Trellis.Cli;

/// <summary><c>trellis firmware …</c>: firmware images for jobs (upload, list, describe, a download link, delete).</summary>
internal static partial class ManageCommands
{
    private static Command Firmware()
    {
        var name = new Argument<string>("name") { Description = "Image name, e.g. lamp-2.1.0.bin (letters, digits, '.', '_', '-')" };
        var file = new Argument<FileInfo>("file") { Description = "The image file (streamed, any size up to the server's limit)" };
        var description = new Option<string?>("--description") { Description = "What the image is" };

        var upload = new Command("upload", "Upload an image; its SHA-256 is checked on arrival.") { name, file, description };
        upload.SetAction((r, ct) =>
        {
            var image = r.GetValue(file)!;
            return !image.Exists
                ? Task.FromResult(Usage($"{image.FullName} does not exist"))
                : RunAsync(r, api => api.UploadAsync("/api/firmware/" + ApiClient.Segment(r.GetValue(name)!), Query(("description", r.GetValue(description))), image.FullName, ct),
                    body => AnsiConsole.MarkupLine($"[green]uploaded[/] {Markup.Escape(Text(body["name"]))}: {Text(body["size"])} bytes, sha256 {Text(body["sha256"])}; in a job document: {Markup.Escape(Text(body["placeholder"]))}"));
        });

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

        return Group("firmware", "Firmware images for jobs: a job document links one with ${aws:iot:s3-presigned-url:firmware/NAME}.", [upload, list, describe, url, delete]);
    }
}
