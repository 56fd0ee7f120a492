using System.Net;

namespace Trellis.Coap;

/// <summary>
/// One request the endpoint has accepted: decoded, deduplicated, its critical options understood,
/// and a block-wise upload (Block1) reassembled into <see cref="CoapMessage.Payload"/>.
/// <paramref name="Block2"/> is the block of the answer the client asked for, if it asked;
/// <paramref name="Peer"/> is who the DTLS handshake proved the source to be (null on plain CoAP).
/// </summary>
public sealed record CoapRequest(CoapMessage Message, IPEndPoint Remote, CoapBlock? Block2 = null, CoapPeer? Peer = null);

/// <summary>
/// The identity a DTLS session proved: a pre-shared key's identity with what
/// <see cref="Dtls.CoapDtlsOptions.PskOf"/> returned beside the key, or the client's certificate.
/// </summary>
public sealed record CoapPeer(string? PskIdentity, object? PskCredential, System.Security.Cryptography.X509Certificates.X509Certificate2? Certificate);

/// <summary>
/// What a resource answers; the endpoint adds the token, the type and the message id, and cuts a
/// payload larger than a block into Block2 blocks. A resource that reads its representation in
/// parts (a firmware image) answers only the requested block and sets <paramref name="Size"/> to
/// the whole representation's length.
/// </summary>
public sealed record CoapResponse(CoapCode Code, ReadOnlyMemory<byte> Payload = default, IReadOnlyList<CoapOption>? Options = null, long? Size = null)
{
    public static CoapResponse Text(CoapCode code, string message) =>
        new(code, System.Text.Encoding.UTF8.GetBytes(message), [CoapOption.Of(CoapOption.ContentFormat, CoapContentFormat.TextPlain)]);
}

/// <summary>The content formats Trellis writes (RFC 7252 §12.3).</summary>
public static class CoapContentFormat
{
    public const uint TextPlain = 0;
    public const uint LinkFormat = 40;
    public const uint OctetStream = 42;
    public const uint Json = 50;
    public const uint Cbor = 60;
}

/// <summary>Answers the requests of one endpoint (the resources: topics, shadows, streams, discovery).</summary>
public interface ICoapHandler
{
    ValueTask<CoapResponse> HandleAsync(CoapRequest request, CancellationToken cancellationToken);

    /// <summary>
    /// Called with the first block of a block-wise upload, before the endpoint keeps any of it: a
    /// refusal (who the caller is, what it may do, how large the whole may be) ends the upload there.
    /// </summary>
    CoapResponse? Admit(CoapRequest firstBlock, long? announcedSize);
}
