namespace Trellis.Coap;

/// <summary>The four message types of RFC 7252 §3.</summary>
public enum CoapType : byte
{
    Confirmable = 0,
    NonConfirmable = 1,
    Acknowledgement = 2,
    Reset = 3,
}

/// <summary>
/// A CoAP message (RFC 7252 §3): type, code, message id, token (0-8 bytes), options in number
/// order, payload. Built by <see cref="CoapCodec.TryDecode"/> or by hand, written by <see cref="CoapCodec.Encode(CoapMessage)"/>.
/// </summary>
public sealed class CoapMessage
{
    public const int MaxTokenLength = 8;

    public CoapType Type { get; init; }

    public CoapCode Code { get; init; }

    public ushort MessageId { get; init; }

    public byte[] Token { get; init; } = [];

    /// <summary>Kept sorted by number (stable: repeated options keep their order).</summary>
    public List<CoapOption> Options { get; init; } = [];

    public ReadOnlyMemory<byte> Payload { get; init; }

    public IEnumerable<CoapOption> All(ushort number) => Options.Where(o => o.Number == number);

    public CoapOption? First(ushort number)
    {
        foreach (var option in Options)
        {
            if (option.Number == number)
            {
                return option;
            }
        }

        return null;
    }

    /// <summary>The Uri-Path segments joined with '/', without a leading '/'.</summary>
    public string Path => string.Join('/', All(CoapOption.UriPath).Select(o => o.AsText()));

    /// <summary>The Uri-Query options as name → value (a name without '=' has an empty value; the first of a name wins).</summary>
    public IReadOnlyDictionary<string, string> Query
    {
        get
        {
            var query = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var option in All(CoapOption.UriQuery))
            {
                var text = option.AsText();
                var eq = text.IndexOf('=', StringComparison.Ordinal);
                query.TryAdd(eq < 0 ? text : text[..eq], eq < 0 ? string.Empty : text[(eq + 1)..]);
            }

            return query;
        }
    }

    /// <summary>A piggybacked or separate response to this request, with its token.</summary>
    public CoapMessage Reply(CoapCode code, CoapType type, ushort messageId, ReadOnlyMemory<byte> payload = default, params CoapOption[] options) => new()
    {
        Type = type,
        Code = code,
        MessageId = messageId,
        Token = Token,
        Options = [.. options.OrderBy(o => o.Number)],
        Payload = payload,
    };
}
