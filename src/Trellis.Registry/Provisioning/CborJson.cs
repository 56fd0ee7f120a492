using System.Formats.Cbor;
using System.Text.Json.Nodes;

namespace Trellis.Registry.Provisioning;

/// <summary>
/// The CBOR variants of the fleet-provisioning topics carry the same documents as the JSON ones:
/// maps with text keys, text strings, integers, booleans and nested maps or arrays. This converts
/// between the two so that one code path serves both.
/// </summary>
public static class CborJson
{
    /// <summary>Decodes one CBOR data item (an empty payload is an empty map); false with a reason when it is not well-formed.</summary>
    public static bool TryDecode(ReadOnlyMemory<byte> payload, out JsonNode? value, out string error)
    {
        value = null;
        error = string.Empty;
        if (payload.IsEmpty)
        {
            value = new JsonObject();
            return true;
        }

        try
        {
            var reader = new CborReader(payload, CborConformanceMode.Lax);
            value = Read(reader, 0);
            if (reader.BytesRemaining > 0)
            {
                error = "the payload has bytes after its CBOR data item";
                return false;
            }

            return true;
        }
        catch (Exception e) when (e is CborContentException or InvalidOperationException or FormatException)
        {
            error = "the payload is not well-formed CBOR: " + e.Message;
            return false;
        }
    }

    public static byte[] Encode(JsonNode? value)
    {
        var writer = new CborWriter(CborConformanceMode.Lax);
        Write(writer, value);
        return writer.Encode();
    }

    private static JsonNode? Read(CborReader reader, int depth)
    {
        if (depth > 16)
        {
            throw new FormatException("nested more than 16 levels deep");
        }

        switch (reader.PeekState())
        {
            case CborReaderState.StartMap:
                {
                    var map = new JsonObject();
                    reader.ReadStartMap();
                    while (reader.PeekState() != CborReaderState.EndMap)
                    {
                        if (reader.PeekState() != CborReaderState.TextString)
                        {
                            throw new FormatException("map keys must be text strings");
                        }

                        var key = reader.ReadTextString();
                        map[key] = Read(reader, depth + 1);
                    }

                    reader.ReadEndMap();
                    return map;
                }

            case CborReaderState.StartArray:
                {
                    var array = new JsonArray();
                    reader.ReadStartArray();
                    while (reader.PeekState() != CborReaderState.EndArray)
                    {
                        array.Add(Read(reader, depth + 1));
                    }

                    reader.ReadEndArray();
                    return array;
                }

            case CborReaderState.TextString:
                return reader.ReadTextString();
            case CborReaderState.UnsignedInteger:
            case CborReaderState.NegativeInteger:
                return reader.ReadInt64();
            case CborReaderState.Boolean:
                return reader.ReadBoolean();
            case CborReaderState.Null:
                reader.ReadNull();
                return null;
            case CborReaderState.HalfPrecisionFloat:
            case CborReaderState.SinglePrecisionFloat:
            case CborReaderState.DoublePrecisionFloat:
                return reader.ReadDouble();
            default:
                throw new FormatException($"unsupported CBOR item {reader.PeekState()}");
        }
    }

    private static void Write(CborWriter writer, JsonNode? value)
    {
        switch (value)
        {
            case null:
                writer.WriteNull();
                break;
            case JsonObject map:
                writer.WriteStartMap(map.Count);
                foreach (var (key, item) in map)
                {
                    writer.WriteTextString(key);
                    Write(writer, item);
                }

                writer.WriteEndMap();
                break;
            case JsonArray array:
                writer.WriteStartArray(array.Count);
                foreach (var item in array)
                {
                    Write(writer, item);
                }

                writer.WriteEndArray();
                break;
            case JsonValue v when v.TryGetValue<string>(out var text):
                writer.WriteTextString(text);
                break;
            case JsonValue v when v.GetValueKind() is System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False:
                writer.WriteBoolean(v.GetValueKind() == System.Text.Json.JsonValueKind.True);
                break;
            case JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.Number:
                // Whatever CLR type holds the number, its JSON text says whether it is whole.
                var digits = v.ToJsonString();
                if (long.TryParse(digits, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var integer))
                {
                    writer.WriteInt64(integer);
                }
                else
                {
                    writer.WriteDouble(double.Parse(digits, System.Globalization.CultureInfo.InvariantCulture));
                }

                break;
            default:
                writer.WriteTextString(value.ToJsonString());
                break;
        }
    }
}
