using System.Buffers.Binary;

namespace Trellis.Coap;

/// <summary>Why a datagram is not a CoAP message (RFC 7252 §3, §4.2, §4.3).</summary>
public enum CoapFormatError
{
    None,

    /// <summary>Shorter than the 4-byte header: nothing to answer (no message id).</summary>
    Truncated,

    /// <summary>A version other than 1: silently ignored (§3).</summary>
    UnknownVersion,

    /// <summary>A token length of 9-15 (§3), or a token longer than the datagram.</summary>
    BadTokenLength,

    /// <summary>An Empty message (0.00) with a token, options or a payload (§4.1).</summary>
    NonEmptyEmpty,

    /// <summary>An option delta or length nibble of 15 without the payload marker, an option past the datagram's end, or a number past 65535.</summary>
    BadOption,

    /// <summary>A payload marker with no payload after it (§3).</summary>
    EmptyPayloadAfterMarker,
}

/// <summary>The CoAP wire format: a pure decoder that never throws on input, and an encoder.</summary>
public static class CoapCodec
{
    public const int HeaderLength = 4;
    private const byte PayloadMarker = 0xFF;

    /// <summary>
    /// Decodes one datagram. On <see cref="CoapFormatError.BadTokenLength"/>, <see cref="CoapFormatError.NonEmptyEmpty"/>,
    /// <see cref="CoapFormatError.BadOption"/> and <see cref="CoapFormatError.EmptyPayloadAfterMarker"/> the header was
    /// read: <paramref name="type"/> and <paramref name="messageId"/> say whether and how to reject it (a CON gets a Reset).
    /// </summary>
    public static CoapFormatError TryDecode(ReadOnlySpan<byte> datagram, out CoapMessage? message, out CoapType type, out ushort messageId)
    {
        message = null;
        type = CoapType.NonConfirmable;
        messageId = 0;
        if (datagram.Length < HeaderLength)
        {
            return CoapFormatError.Truncated;
        }

        if (datagram[0] >> 6 != 1)
        {
            return CoapFormatError.UnknownVersion;
        }

        type = (CoapType)((datagram[0] >> 4) & 3);
        var tokenLength = datagram[0] & 0x0F;
        var code = new CoapCode(datagram[1]);
        messageId = BinaryPrimitives.ReadUInt16BigEndian(datagram[2..]);
        if (tokenLength > CoapMessage.MaxTokenLength || HeaderLength + tokenLength > datagram.Length)
        {
            return CoapFormatError.BadTokenLength;
        }

        if (code == CoapCode.Empty && datagram.Length > HeaderLength)
        {
            return CoapFormatError.NonEmptyEmpty;
        }

        var token = datagram.Slice(HeaderLength, tokenLength).ToArray();
        var options = new List<CoapOption>();
        var at = HeaderLength + tokenLength;
        var number = 0;
        var payload = ReadOnlyMemory<byte>.Empty;
        while (at < datagram.Length)
        {
            var first = datagram[at++];
            if (first == PayloadMarker)
            {
                if (at == datagram.Length)
                {
                    return CoapFormatError.EmptyPayloadAfterMarker;
                }

                payload = datagram[at..].ToArray();
                break;
            }

            if (!Extended(datagram, ref at, first >> 4, out var delta) || !Extended(datagram, ref at, first & 0x0F, out var length)
                || (number += delta) > ushort.MaxValue || length > datagram.Length - at)
            {
                return CoapFormatError.BadOption;
            }

            options.Add(new CoapOption((ushort)number, datagram.Slice(at, length).ToArray()));
            at += length;
        }

        message = new CoapMessage { Type = type, Code = code, MessageId = messageId, Token = token, Options = options, Payload = payload };
        return CoapFormatError.None;
    }

    /// <summary>A nibble's value with its extension bytes (13: one more byte + 13; 14: two more + 269; 15: an error).</summary>
    private static bool Extended(ReadOnlySpan<byte> datagram, ref int at, int nibble, out int value)
    {
        value = nibble;
        switch (nibble)
        {
            case 13 when at < datagram.Length:
                value = datagram[at++] + 13;
                return true;
            case 14 when at + 1 < datagram.Length:
                value = BinaryPrimitives.ReadUInt16BigEndian(datagram[at..]) + 269;
                at += 2;
                return true;
            case < 13:
                return true;
            default:
                return false;
        }
    }

    /// <summary>The message's length on the wire.</summary>
    public static int EncodedLength(CoapMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var length = HeaderLength + message.Token.Length;
        var number = 0;
        foreach (var option in Sorted(message))
        {
            length += 1 + ExtensionLength(option.Number - number) + ExtensionLength(option.Value.Length) + option.Value.Length;
            number = option.Number;
        }

        return length + (message.Payload.IsEmpty ? 0 : 1 + message.Payload.Length);
    }

    public static byte[] Encode(CoapMessage message)
    {
        var bytes = new byte[EncodedLength(message)];
        Encode(message, bytes);
        return bytes;
    }

    /// <summary>Writes the message to <paramref name="destination"/> (at least <see cref="EncodedLength"/> bytes); returns the bytes written.</summary>
    public static int Encode(CoapMessage message, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (message.Token.Length > CoapMessage.MaxTokenLength)
        {
            throw new ArgumentException($"A token is at most {CoapMessage.MaxTokenLength} bytes.", nameof(message));
        }

        destination[0] = (byte)(0x40 | ((byte)message.Type << 4) | message.Token.Length);
        destination[1] = message.Code.Value;
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], message.MessageId);
        message.Token.CopyTo(destination[HeaderLength..]);
        var at = HeaderLength + message.Token.Length;
        var number = 0;
        foreach (var option in Sorted(message))
        {
            var delta = option.Number - number;
            var length = option.Value.Length;
            var header = at++;
            destination[header] = (byte)((Nibble(delta) << 4) | Nibble(length));
            WriteExtension(destination, ref at, delta);
            WriteExtension(destination, ref at, length);
            option.Value.CopyTo(destination[at..]);
            at += length;
            number = option.Number;
        }

        if (!message.Payload.IsEmpty)
        {
            destination[at++] = PayloadMarker;
            message.Payload.Span.CopyTo(destination[at..]);
            at += message.Payload.Length;
        }

        return at;
    }

    private static IEnumerable<CoapOption> Sorted(CoapMessage message) => message.Options.OrderBy(o => o.Number);

    private static int Nibble(int value) => value < 13 ? value : value < 269 ? 13 : 14;

    private static int ExtensionLength(int value) => value < 13 ? 0 : value < 269 ? 1 : 2;

    private static void WriteExtension(Span<byte> destination, ref int at, int value)
    {
        if (value >= 269)
        {
            BinaryPrimitives.WriteUInt16BigEndian(destination[at..], (ushort)(value - 269));
            at += 2;
        }
        else if (value >= 13)
        {
            destination[at++] = (byte)(value - 13);
        }
    }
}
