using System.Net;

namespace Trellis.Coap;

/// <summary>One request the endpoint has accepted: decoded, deduplicated and its critical options understood.</summary>
public sealed record CoapRequest(CoapMessage Message, IPEndPoint Remote);

/// <summary>What a resource answers; the endpoint adds the token, the type and the message id.</summary>
public sealed record CoapResponse(CoapCode Code, ReadOnlyMemory<byte> Payload = default, IReadOnlyList<CoapOption>? Options = null)
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

/// <summary>Answers the requests of one endpoint (the resources: topics, shadows, discovery).</summary>
public interface ICoapHandler
{
    ValueTask<CoapResponse> HandleAsync(CoapRequest request, CancellationToken cancellationToken);
}
