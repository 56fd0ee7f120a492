using System.Security.Cryptography.X509Certificates;
using Org.BouncyCastle.Tls;
using Org.BouncyCastle.Tls.Crypto;
using Org.BouncyCastle.Tls.Crypto.Impl.BC;

namespace Trellis.Coap.Dtls;

/// <summary>
/// The server side of one DTLS handshake: PSK suites (identity = a thing's name) and ECDHE-ECDSA
/// suites with a required client certificate, DTLS 1.2 only, the suites RFC 7252 §9 makes
/// mandatory for CoAP (TLS_PSK_WITH_AES_128_CCM_8, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8) among them.
/// Sessions are offered for resumption through <see cref="DtlsSessions"/>.
/// </summary>
internal sealed class CoapDtlsServer(BcTlsCrypto crypto, DtlsSessions sessions) : AbstractTlsServer(crypto), TlsPskIdentityManager
{
    private static readonly int[] Suites =
    [
        CipherSuite.TLS_PSK_WITH_AES_128_CCM_8,
        CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256,
        CipherSuite.TLS_PSK_WITH_AES_128_CCM,
        CipherSuite.TLS_PSK_WITH_AES_128_CBC_SHA256,
        CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256,
        CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CCM,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
    ];

    /// <summary>What the PSK lookup returned for this handshake's identity.</summary>
    private object? _pskCredential;
    private X509Certificate2? _clientCertificate;

    /// <summary>Who the finished handshake proved the client to be.</summary>
    public CoapPeer? Peer { get; private set; }

    /// <summary>Why the handshake was refused, when Trellis refused it (for the log).</summary>
    public string? Refusal { get; private set; }

    /// <summary>The PSK identity the client named, once it has (a handshake that then times out most likely used a wrong key).</summary>
    public string? PskIdentity { get; private set; }

    public bool Resumed { get; private set; }

    protected override ProtocolVersion[] GetSupportedVersions() => ProtocolVersion.DTLSv12.Only();

    /// <summary>
    /// PSK suites first, whatever the client's order: a client offers them only when it holds a
    /// pre-shared key (OpenSSL, mbed TLS, tinydtls), and then has no certificate to send.
    /// </summary>
    protected override bool PreferLocalCipherSuites() => true;

    protected override int[] GetSupportedCipherSuites() => TlsUtilities.GetSupportedCipherSuites(Crypto, Suites);

    public override int GetHandshakeTimeoutMillis() => (int)sessions.Options.HandshakeTimeout.TotalMilliseconds;

    /// <summary>RFC 6347 §4.1.2.7: a record that does not authenticate is dropped, not fatal (anyone can spoof a source address).</summary>
    public override bool IgnoreCorruptDtlsRecords => true;

    public override TlsPskIdentityManager GetPskIdentityManager() => this;

    public override TlsCredentials? GetCredentials()
    {
        switch (m_context.SecurityParameters.KeyExchangeAlgorithm)
        {
            case KeyExchangeAlgorithm.PSK:
            case KeyExchangeAlgorithm.ECDHE_PSK:
                return null;
            case KeyExchangeAlgorithm.ECDHE_ECDSA:
                var (key, chain) = sessions.ServerCredentials();
                return new BcDefaultTlsCredentialedSigner(new TlsCryptoParameters(m_context), (BcTlsCrypto)Crypto, key, chain,
                    SignatureAndHashAlgorithm.GetInstance(HashAlgorithm.sha256, SignatureAlgorithm.ecdsa));
            default:
                throw new TlsFatalAlert(AlertDescription.internal_error);
        }
    }

    /// <summary>Certificate mode: the client must send its certificate and prove its key (CertificateVerify).</summary>
    public override Org.BouncyCastle.Tls.CertificateRequest GetCertificateRequest() =>
        new([ClientCertificateType.ecdsa_sign, ClientCertificateType.rsa_sign], TlsUtilities.GetDefaultSupportedSignatureAlgorithms(m_context), null);

    public override void NotifyClientCertificate(Certificate clientCertificate)
    {
        if (clientCertificate is null || clientCertificate.IsEmpty)
        {
            Refusal = "no client certificate: certificate mode needs the device's certificate (or use a pre-shared key)";
            throw new TlsFatalAlert(AlertDescription.handshake_failure, Refusal);
        }

        var certificate = X509CertificateLoader.LoadCertificate(clientCertificate.GetCertificateAt(0).GetEncoded());
        if (sessions.Options.CheckClientCertificate(certificate) is { } reason)
        {
            certificate.Dispose();
            Refusal = reason;
            throw new TlsFatalAlert(AlertDescription.bad_certificate, reason);
        }

        _clientCertificate = certificate;
    }

    public byte[]? GetHint() => null;

    public byte[]? GetPsk(byte[] identity)
    {
        var name = System.Text.Encoding.UTF8.GetString(identity);
        PskIdentity = name;
        if (sessions.Options.PskOf(name) is not { } psk)
        {
            Refusal = $"PSK identity '{name}' has no pre-shared key: create a device token with dtlsPsk for that thing";
            return null;
        }

        _pskCredential = psk.Credential;
        return psk.Key;
    }

    public override byte[] GetNewSessionID() => Org.BouncyCastle.Security.SecureRandom.GetNextBytes(Crypto.SecureRandom, 32);

    public override TlsSession? GetSessionToResume(byte[] sessionID) => sessions.Resumable(sessionID)?.Session;

    public override void NotifyHandshakeComplete()
    {
        base.NotifyHandshakeComplete();
        var parameters = m_context.SecurityParameters;
        Resumed = parameters.IsResumedSession;
        if (Resumed)
        {
            // The abbreviated handshake proved the client holds the session's secret; the identity is
            // the one the full handshake proved, checked again here as a new handshake would be.
            var kept = sessions.Resumable(parameters.SessionID);
            if (kept?.Peer is not { } earlier)
            {
                throw new TlsFatalAlert(AlertDescription.handshake_failure, "resumed session unknown");
            }

            if (earlier.Certificate is { } certificate && sessions.Options.CheckClientCertificate(certificate) is { } reason)
            {
                Refusal = reason;
                throw new TlsFatalAlert(AlertDescription.bad_certificate, reason);
            }

            if (earlier.PskIdentity is { } identity && sessions.Options.PskOf(identity) is null)
            {
                Refusal = $"PSK identity '{identity}' no longer has a pre-shared key";
                throw new TlsFatalAlert(AlertDescription.handshake_failure, Refusal);
            }

            Peer = earlier;
            return;
        }

        var pskIdentity = parameters.PskIdentity is { } id ? System.Text.Encoding.UTF8.GetString(id) : null;
        Peer = new CoapPeer(pskIdentity, _pskCredential, _clientCertificate);
        if (m_context.Session is { } session && parameters.SessionID is { Length: > 0 })
        {
            sessions.KeepForResumption(parameters.SessionID, session, Peer);
        }
    }
}
