using System.Security.Cryptography.X509Certificates;
using Trellis.Security.Policies;

namespace Trellis.Security.Pki;

/// <summary>Fills the <c>iot:Certificate.*</c> policy variables from a client certificate.</summary>
public static class CertificateVariables
{
    private static readonly Dictionary<string, string> OidNames = new(StringComparer.Ordinal)
    {
        ["2.5.4.3"] = "CommonName",
        ["2.5.4.10"] = "Organization",
        ["2.5.4.11"] = "OrganizationalUnit",
        ["2.5.4.6"] = "Country",
        ["2.5.4.8"] = "State",
        ["2.5.4.7"] = "Locality",
        ["2.5.4.46"] = "DistinguishedNameQualifier",
        ["2.5.4.5"] = "SerialNumber",
        ["2.5.4.12"] = "Title",
        ["2.5.4.4"] = "Surname",
        ["2.5.4.42"] = "GivenName",
        ["2.5.4.43"] = "Initials",
        ["2.5.4.65"] = "Pseudonym",
        ["2.5.4.44"] = "GenerationQualifier",
    };

    public static void Fill(PolicyVariables variables, X509Certificate2 certificate)
    {
        AddName(variables, "iot:Certificate.Subject.", certificate.SubjectName);
        AddName(variables, "iot:Certificate.Issuer.", certificate.IssuerName);
        variables["iot:Certificate.SerialNumber"] = certificate.SerialNumber;
        variables["iot:Certificate.Validity.NotBefore"] = certificate.NotBefore.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
        variables["iot:Certificate.Validity.NotAfter"] = certificate.NotAfter.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
        foreach (var extension in certificate.Extensions)
        {
            if (extension is X509SubjectAlternativeNameExtension san)
            {
                var dns = san.EnumerateDnsNames().FirstOrDefault();
                if (dns is not null)
                {
                    variables["iot:Certificate.Subject.AlternativeName.DNSName"] = dns;
                }

                var ip = san.EnumerateIPAddresses().FirstOrDefault();
                if (ip is not null)
                {
                    variables["iot:Certificate.Subject.AlternativeName.IPAddress"] = ip.ToString();
                }
            }
        }
    }

    /// <summary>The subject's single-valued attributes by field name (CommonName, Organization, …), first of each.</summary>
    public static Dictionary<string, string> SubjectFields(X509Certificate2 certificate)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var rdn in certificate.SubjectName.EnumerateRelativeDistinguishedNames())
        {
            if (!rdn.HasMultipleElements && rdn.GetSingleElementType().Value is { } oid && OidNames.TryGetValue(oid, out var field)
                && rdn.GetSingleElementValue() is { } value)
            {
                fields.TryAdd(field, value);
            }
        }

        return fields;
    }

    private static void AddName(PolicyVariables variables, string prefix, X500DistinguishedName name)
    {
        foreach (var rdn in name.EnumerateRelativeDistinguishedNames())
        {
            if (rdn.HasMultipleElements)
            {
                continue;
            }

            var oid = rdn.GetSingleElementType().Value;
            if (oid is not null && OidNames.TryGetValue(oid, out var field) && variables[prefix + field] is null)
            {
                variables[prefix + field] = rdn.GetSingleElementValue();
            }
        }
    }
}
