using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Time.Testing;
using Trellis.Registry;
using Trellis.Security.Pki;
using Trellis.Storage;

namespace Trellis.UnitTests.Registry;

/// <summary>The TLS listener's gate for client certificates that do not chain to Trellis's CA.</summary>
public sealed class ClientCertificateTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("trellis-unit-").FullName;
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly CertificateAuthority _ca;
    private readonly RegistryService _registry;

    public ClientCertificateTests()
    {
        _ca = CertificateAuthority.LoadOrCreate(_directory, _time);
        _registry = new RegistryService(new SqliteDatabase(Path.Combine(_directory, "trellis.db"), Schema.Migrations), _ca, new RegistryOptions(), _time);
    }

    public void Dispose()
    {
        _ca.Dispose();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public void A_registered_self_signed_certificate_passes_until_it_expires_and_an_unknown_one_never()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var now = _time.GetUtcNow();
        using var registered = new CertificateRequest("CN=registered", key, HashAlgorithmName.SHA256).CreateSelfSigned(now.AddMinutes(-1), now.AddDays(1));
        using var unknown = new CertificateRequest("CN=unknown", key, HashAlgorithmName.SHA256).CreateSelfSigned(now.AddMinutes(-1), now.AddDays(1));
        Assert.True(_registry.RegisterCertificateWithoutCa(registered.ExportCertificatePem(), CertificateStatus.Active).IsSuccess);

        Assert.True(_registry.AcceptsClientCertificate(registered));
        Assert.False(_registry.AcceptsClientCertificate(unknown));

        _time.Advance(TimeSpan.FromDays(2));
        Assert.False(_registry.AcceptsClientCertificate(registered));
    }
}
