using CsCheck;
using Trellis.Coap;

namespace Trellis.UnitTests.Coap;

public sealed class CoapCodecTests
{
    private static readonly Gen<CoapOption> OptionGen =
        Gen.Select(Gen.UShort[1, 65000], Gen.Byte.Array[0, 300], (number, value) => new CoapOption(number, value));

    private static readonly Gen<CoapMessage> MessageGen =
        Gen.Select(Gen.Enum<CoapType>(), Gen.Byte[1, 255], Gen.UShort, Gen.Byte.Array[0, 8], OptionGen.List[0, 12], Gen.Byte.Array[0, 600],
            (type, code, id, token, options, payload) => new CoapMessage
            {
                Type = type,
                Code = new CoapCode(code),
                MessageId = id,
                Token = token,
                Options = [.. options.OrderBy(o => o.Number)],
                Payload = payload,
            });

    [Fact]
    public void Every_message_survives_an_encode_and_decode_round_trip()
    {
        MessageGen.Sample(message =>
        {
            var bytes = CoapCodec.Encode(message);
            Assert.Equal(CoapCodec.EncodedLength(message), bytes.Length);
            Assert.Equal(CoapFormatError.None, CoapCodec.TryDecode(bytes, out var decoded, out _, out _));
            Assert.Equal(message.Type, decoded!.Type);
            Assert.Equal(message.Code, decoded.Code);
            Assert.Equal(message.MessageId, decoded.MessageId);
            Assert.Equal(message.Token, decoded.Token);
            Assert.Equal(message.Options.Select(o => (o.Number, Convert.ToHexString(o.Value))), decoded.Options.Select(o => (o.Number, Convert.ToHexString(o.Value))));
            Assert.Equal(message.Payload.ToArray(), decoded.Payload.ToArray());
        });
    }

    [Fact]
    public void No_exception_escapes_the_decoder_on_random_bytes()
    {
        Gen.Byte.Array[0, 200].Sample(bytes =>
        {
            var error = CoapCodec.TryDecode(bytes, out var message, out _, out _);
            Assert.Equal(error == CoapFormatError.None, message is not null);
        });
    }

    [Fact]
    public void Random_corruptions_of_valid_messages_decode_or_are_refused_without_exceptions()
    {
        Gen.Select(MessageGen, Gen.Int, Gen.Byte).Sample((message, at, value) =>
        {
            var bytes = CoapCodec.Encode(message);
            bytes[Math.Abs(at % bytes.Length)] = value;
            _ = CoapCodec.TryDecode(bytes, out _, out _, out _);
        });
    }

    [Theory]
    [InlineData("40", CoapFormatError.Truncated)] // shorter than the header
    [InlineData("80010001", CoapFormatError.UnknownVersion)] // version 2
    [InlineData("49010001", CoapFormatError.BadTokenLength)] // token length 9
    [InlineData("4F010001", CoapFormatError.BadTokenLength)] // token length 15
    [InlineData("42010001AA", CoapFormatError.BadTokenLength)] // a 2-byte token with 1 byte left
    [InlineData("40000001FF00", CoapFormatError.NonEmptyEmpty)] // an Empty message with a payload
    [InlineData("40010001FF", CoapFormatError.EmptyPayloadAfterMarker)] // a payload marker and nothing after it
    [InlineData("40010001F0", CoapFormatError.BadOption)] // delta nibble 15 without the marker
    [InlineData("400100010F", CoapFormatError.BadOption)] // length nibble 15
    [InlineData("40010001D1", CoapFormatError.BadOption)] // delta 13 with its extension byte missing
    [InlineData("40010001E0FFFF", CoapFormatError.BadOption)] // delta 269 + 65535: past option number 65535
    [InlineData("40010001336162", CoapFormatError.BadOption)] // Uri-Host of length 3 with two bytes left
    public void Malformed_datagrams_are_named(string hex, CoapFormatError expected)
    {
        var bytes = Convert.FromHexString(hex);
        Assert.Equal(expected, CoapCodec.TryDecode(bytes, out var message, out _, out _));
        Assert.Null(message);
    }

    [Fact]
    public void Header_fields_and_the_message_id_of_a_refused_confirmable_message_are_read_for_its_reset()
    {
        Assert.Equal(CoapFormatError.BadOption, CoapCodec.TryDecode(Convert.FromHexString("4001BEEFF0"), out _, out var type, out var id));
        Assert.Equal(CoapType.Confirmable, type);
        Assert.Equal(0xBEEF, id);
    }

    [Fact]
    public void Option_deltas_and_lengths_use_their_extended_forms()
    {
        var message = new CoapMessage
        {
            Type = CoapType.Confirmable,
            Code = CoapCode.Post,
            MessageId = 7,
            Token = [1, 2, 3],
            Options = [CoapOption.Text(CoapOption.UriPath, "topics"), CoapOption.Of(CoapOption.ContentFormat, 50), new CoapOption(2048, new byte[300])],
            Payload = "{}"u8.ToArray(),
        };
        var bytes = CoapCodec.Encode(message);

        // 4 header + 3 token + (1 + 6) Uri-Path + (1 + 1) Content-Format + (1 + 2 + 2 + 300) option 2048 (delta 2036, length 300) + 1 + 2.
        Assert.Equal(4 + 3 + 7 + 2 + 305 + 3, bytes.Length);
        Assert.Equal(CoapFormatError.None, CoapCodec.TryDecode(bytes, out var decoded, out _, out _));
        Assert.Equal("topics", decoded!.Path);
        Assert.Equal(50u, decoded.First(CoapOption.ContentFormat)!.Value.AsValue());
        Assert.Equal(300, decoded.First(2048)!.Value.Value.Length);
    }

    [Theory]
    [InlineData(0u, 0u, false, 0)]
    [InlineData(0x0Eu, 0u, true, 6)]
    [InlineData(0x1Fu, 1u, true, 7)]
    [InlineData(0xFFFFF6u, 0xFFFFFu, false, 6)]
    public void Block_values_split_into_number_more_and_size(uint value, uint number, bool more, int szx)
    {
        var block = CoapBlock.FromValue(value);
        Assert.Equal((number, more, szx), (block.Number, block.More, block.SizeExponent));
        Assert.Equal(value, block.Value);
        Assert.Equal(szx != 7, block.IsValid);
    }

    [Fact]
    public void Integer_options_take_the_fewest_bytes()
    {
        Assert.Empty(CoapOption.Of(CoapOption.ContentFormat, 0).Value);
        Assert.Single(CoapOption.Of(CoapOption.ContentFormat, 50).Value);
        Assert.Equal(2, CoapOption.Of(CoapOption.Size1, 1024).Value.Length);
        Assert.Equal(65536u, CoapOption.Of(CoapOption.Size2, 65536).AsValue());
    }

    [Fact]
    public void Codes_print_as_class_dot_detail()
    {
        Assert.Equal("2.05", CoapCode.Content.ToString());
        Assert.Equal("4.02", CoapCode.BadOption.ToString());
        Assert.True(CoapCode.Post.IsRequest);
        Assert.False(CoapCode.Empty.IsRequest);
    }
}
