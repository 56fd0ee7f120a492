using System.Globalization;

namespace Trellis.Coap;

/// <summary>A CoAP code (RFC 7252 §3): a 3-bit class and a 5-bit detail, written c.dd.</summary>
public readonly record struct CoapCode(byte Value)
{
    public static readonly CoapCode Empty = new(0);
    public static readonly CoapCode Get = new(1);
    public static readonly CoapCode Post = new(2);
    public static readonly CoapCode Put = new(3);
    public static readonly CoapCode Delete = new(4);

    public static readonly CoapCode Created = Of(2, 1);
    public static readonly CoapCode Deleted = Of(2, 2);
    public static readonly CoapCode Valid = Of(2, 3);
    public static readonly CoapCode Changed = Of(2, 4);
    public static readonly CoapCode Content = Of(2, 5);
    public static readonly CoapCode Continue = Of(2, 31);
    public static readonly CoapCode BadRequest = Of(4, 0);
    public static readonly CoapCode Unauthorized = Of(4, 1);
    public static readonly CoapCode BadOption = Of(4, 2);
    public static readonly CoapCode Forbidden = Of(4, 3);
    public static readonly CoapCode NotFound = Of(4, 4);
    public static readonly CoapCode MethodNotAllowed = Of(4, 5);
    public static readonly CoapCode NotAcceptable = Of(4, 6);
    public static readonly CoapCode RequestEntityIncomplete = Of(4, 8);
    public static readonly CoapCode Conflict = Of(4, 9);
    public static readonly CoapCode PreconditionFailed = Of(4, 12);
    public static readonly CoapCode RequestEntityTooLarge = Of(4, 13);
    public static readonly CoapCode UnsupportedContentFormat = Of(4, 15);
    public static readonly CoapCode TooManyRequests = Of(4, 29);
    public static readonly CoapCode InternalServerError = Of(5, 0);
    public static readonly CoapCode NotImplemented = Of(5, 1);
    public static readonly CoapCode ServiceUnavailable = Of(5, 3);

    public int Class => Value >> 5;

    public int Detail => Value & 0x1F;

    public bool IsRequest => Class == 0 && Value != 0;

    public bool IsResponse => Class is >= 2 and <= 5;

    public static CoapCode Of(int codeClass, int detail) => new((byte)((codeClass << 5) | detail));

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Class}.{Detail:00}");
}
