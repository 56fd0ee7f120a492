using System.IO.Compression;
using Trellis.Api.Aws;
using Trellis.Registry;

namespace Trellis.Api.Console;

/// <summary>Where devices connect and what they trust, for the bundles the console hands out.</summary>
public sealed record DeviceBundleSource(string CaPath);

/// <summary>
/// <c>POST /api/things/{thingName}/bundle</c> (operators and admins): a new active certificate and
/// key for an existing thing, under the default device policy (made on first use) unless the thing
/// already has what it needs, as a ZIP a device can use at once: the certificate, the key (the
/// server keeps no copy), the CA to trust, <c>device.json</c> (as <c>trellis provision</c> writes
/// it) and <c>connect.sh</c>, a mosquitto command that sends the device's first message.
/// </summary>
public static class DeviceBundles
{
    public static IEndpointRouteBuilder MapDeviceBundles(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/things/{thingName}/bundle", (string thingName, RegistryService registry, IotEndpoints endpoints, DeviceBundleSource source) =>
            Create(thingName, registry, endpoints, source)).WithName("CreateDeviceBundle");
        return app;
    }

    private static IResult Create(string thing, RegistryService registry, IotEndpoints endpoints, DeviceBundleSource source)
    {
        if (!registry.DescribeThing(thing).IsSuccess)
        {
            return AwsResults.Error(new TrellisError.NotFound($"Thing {thing} cannot be found: create it first."));
        }

        if (!registry.GetPolicy(DefaultDevicePolicy.Name).IsSuccess && registry.CreatePolicy(DefaultDevicePolicy.Name, DefaultDevicePolicy.Document) is { IsSuccess: false } made
            && made.Error is not TrellisError.AlreadyExists)
        {
            return AwsResults.Error(made.Error!);
        }

        var created = registry.CreateKeysAndCertificate(setAsActive: true);
        var certificate = created.Certificate;
        if ((registry.AttachPolicy(DefaultDevicePolicy.Name, certificate.Arn) ?? registry.AttachThingPrincipal(thing, certificate.Arn, exclusive: false)) is { } failed)
        {
            // Nothing is left behind: the key of this certificate exists nowhere else.
            registry.UpdateCertificate(certificate.Id, CertificateStatus.Inactive);
            registry.DeleteCertificate(certificate.Id, forceDelete: true);
            return AwsResults.Error(failed);
        }

        var (host, port) = DeviceFolderFiles.Endpoint(endpoints.Tls);
        using var zip = new MemoryStream();
        using (var archive = new ZipArchive(zip, ZipArchiveMode.Create, leaveOpen: true))
        {
            void Add(string name, string text, int mode)
            {
                var entry = archive.CreateEntry($"{thing}/{name}", CompressionLevel.Optimal);
                entry.ExternalAttributes = (0x8000 | mode) << 16; // a regular file with its Unix permissions
                using var writer = new StreamWriter(entry.Open());
                writer.Write(text);
            }

            Add($"{thing}.cert.pem", certificate.Pem, 0x1A4); // 0644
            Add($"{thing}.private.key", created.PrivateKeyPem!, 0x180); // 0600
            Add("ca.pem", File.ReadAllText(source.CaPath), 0x1A4);
            Add("device.json", DeviceFolderFiles.DeviceJson(thing, host, port), 0x1A4);
            Add("connect.sh", DeviceFolderFiles.ConnectScript(thing, host, port), 0x1ED); // 0755
        }

        return Results.File(zip.ToArray(), "application/zip", $"{thing}-bundle.zip");
    }
}
