using System.Security.Cryptography.X509Certificates;

namespace Trellis.Coap.Dtls;

/// <summary>What a CoAP endpoint needs to speak DTLS 1.2 (RFC 6347, with RFC 7925's profile for IoT).</summary>
public sealed class CoapDtlsOptions
{
    /// <summary>The server's certificate, with its ECDSA (P-256) or RSA private key: sent in certificate mode.</summary>
    public required X509Certificate2 Certificate { get; init; }

    /// <summary>Certificates sent after the server's own (its issuing CA), so that a client can build the chain.</summary>
    public IReadOnlyList<X509Certificate2> Chain { get; init; } = [];

    /// <summary>
    /// The pre-shared key of an identity (a thing's name), with a credential the handler gets back
    /// in <see cref="CoapPeer.PskCredential"/>; null when the identity has no key (the handshake then
    /// fails with unknown_psk_identity). Called once per full handshake, on a handshake thread.
    /// </summary>
    public required Func<string, (byte[] Key, object? Credential)?> PskOf { get; init; }

    /// <summary>
    /// Whether a client certificate may complete a handshake (it has already proved its key): null
    /// when it may, otherwise the reason, which is logged and ends the handshake with bad_certificate.
    /// </summary>
    public required Func<X509Certificate2, string?> CheckClientCertificate { get; init; }

    /// <summary>Sessions kept at most (established and in handshake); past it a new ClientHello is dropped.</summary>
    public int MaxSessions { get; init; } = 100_000;

    /// <summary>Handshakes run at once, each on its own thread; past it a verified ClientHello is dropped (the client sends it again).</summary>
    public int MaxHandshakes { get; init; } = 64;

    /// <summary>How long a session may stay silent before it is forgotten (the device then handshakes again, or resumes).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromHours(1);

    /// <summary>How long one handshake may take, retransmissions included.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>Sessions kept for resumption (an abbreviated handshake: no key exchange, no certificates) at most, and for how long.</summary>
    public int MaxResumableSessions { get; init; } = 100_000;

    public TimeSpan ResumptionLifetime { get; init; } = TimeSpan.FromHours(24);
}
