using Microsoft.Extensions.Time.Testing;
using Trellis.Security.SigV4;

namespace Trellis.UnitTests.Security;

/// <summary>Uses AWS's published SigV4 example (IAM ListUsers, 2015-08-30) as the golden vector.</summary>
public sealed class SigV4VerifierTests
{
    private const string AccessKey = "AKIDEXAMPLE";
    private const string Secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    private const string Signature = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";

    private static SigV4Request Request(string signature, string date = "20150830T123600Z") => new(
        "GET",
        "/",
        "Action=ListUsers&Version=2010-05-08",
        new Dictionary<string, string>
        {
            ["authorization"] = $"AWS4-HMAC-SHA256 Credential={AccessKey}/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature={signature}",
            ["content-type"] = "application/x-www-form-urlencoded; charset=utf-8",
            ["host"] = "iam.amazonaws.com",
            ["x-amz-date"] = date,
        },
        ReadOnlyMemory<byte>.Empty);

    private static SigV4Verifier Verifier(DateTimeOffset now) =>
        new(key => key == AccessKey ? Secret : null, new FakeTimeProvider(now));

    [Fact]
    public void Signer_output_verifies_and_any_change_breaks_it()
    {
        var now = new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero);
        var verifier = new SigV4Verifier(k => k == "AKIDEXAMPLE" ? "secret-key" : null, new FakeTimeProvider(now));
        var body = "{\"thingName\":\"lamp\"}"u8.ToArray();
        var headers = SigV4Signer.Sign("POST", "127.0.0.1:8080", "/things/lamp%201", "b=2&a=1", body, "AKIDEXAMPLE", "secret-key", "us-east-1", "iot", now);
        headers["host"] = "127.0.0.1:8080";

        Assert.True(verifier.Verify(new SigV4Request("POST", "/things/lamp%201", "b=2&a=1", headers, body), ["iot"]).Success);
        Assert.False(verifier.Verify(new SigV4Request("POST", "/things/lamp%202", "b=2&a=1", headers, body), ["iot"]).Success);
        Assert.False(verifier.Verify(new SigV4Request("POST", "/things/lamp%201", "b=2&a=1", headers, "{}"u8.ToArray()), ["iot"]).Success);
        Assert.False(verifier.Verify(new SigV4Request("PUT", "/things/lamp%201", "b=2&a=1", headers, body), ["iot"]).Success);
    }

    [Fact]
    public void Aws_example_signature_verifies()
    {
        var result = Verifier(new DateTimeOffset(2015, 8, 30, 12, 36, 0, TimeSpan.Zero)).Verify(Request(Signature), ["iam"]);

        Assert.True(result.Success, result.Message);
        Assert.Equal(AccessKey, result.AccessKeyId);
    }

    [Fact]
    public void Wrong_signature_is_rejected()
    {
        var result = Verifier(new DateTimeOffset(2015, 8, 30, 12, 36, 0, TimeSpan.Zero)).Verify(Request(Signature.Replace('5', '6')), ["iam"]);

        Assert.False(result.Success);
        Assert.Equal("InvalidSignatureException", result.ErrorType);
    }

    [Fact]
    public void Old_signature_is_rejected_as_expired()
    {
        var result = Verifier(new DateTimeOffset(2015, 8, 30, 13, 0, 0, TimeSpan.Zero)).Verify(Request(Signature), ["iam"]);

        Assert.False(result.Success);
        Assert.Contains("Signature expired", result.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unsigned_request_is_rejected()
    {
        var request = Request(Signature);
        var headers = new Dictionary<string, string>(request.Headers);
        headers.Remove("authorization");

        var result = Verifier(new DateTimeOffset(2015, 8, 30, 12, 36, 0, TimeSpan.Zero)).Verify(request with { Headers = headers }, ["iam"]);

        Assert.False(result.Success);
        Assert.Equal("MissingAuthenticationTokenException", result.ErrorType);
    }
}
