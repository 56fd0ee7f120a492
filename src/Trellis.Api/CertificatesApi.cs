using System.Text.Json.Nodes;

namespace Trellis.Api;

/// <summary>The description a CA certificate shares with device certificates (DescribeCACertificate still builds it here; device certificates go through the dispatcher).</summary>
public static class CertificatesApi
{
    /// <summary>AWS's CertificateDescription / CACertificateDescription fields common to device and CA certificates.</summary>
    internal static JsonObject Description(string arn, string id, string status, string pem, string accountId, long createdMs, long updatedMs, string mode)
    {
        using var x509 = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(pem);
        return new JsonObject
        {
            ["certificateArn"] = arn,
            ["certificateId"] = id,
            ["status"] = status,
            ["certificatePem"] = pem,
            ["ownedBy"] = accountId,
            ["creationDate"] = AwsResults.Timestamp(createdMs),
            ["lastModifiedDate"] = AwsResults.Timestamp(updatedMs),
            ["customerVersion"] = 1,
            ["generationId"] = updatedMs.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["validity"] = new JsonObject
            {
                ["notBefore"] = new DateTimeOffset(x509.NotBefore.ToUniversalTime()).ToUnixTimeSeconds(),
                ["notAfter"] = new DateTimeOffset(x509.NotAfter.ToUniversalTime()).ToUnixTimeSeconds(),
            },
            ["certificateMode"] = mode,
        };
    }
}
