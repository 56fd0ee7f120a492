using System.Buffers;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http.Features;
using Trellis.Security.SigV4;

namespace Trellis.Api;

/// <summary>
/// Verifies AWS SigV4 on every management request. Everything the headers carry is checked
/// before a byte of the body is read (see <see cref="SigV4Verifier.VerifyHeaders"/>), so an
/// unsigned, expired or unknown-key request is refused at once whatever body it announces. The
/// body is then read only up to the route's limit (<see cref="ApiLimits"/>), by at most
/// <see cref="ApiLimits.MaxConcurrentBodies"/> requests at once, through the hash the signature
/// covers. Refusals are AWS errors: 403 with the signature error type, 413, 429.
/// </summary>
public sealed class SigV4Middleware(RequestDelegate next, SigV4Verifier verifier, ApiLimits limits, RequestBodyGate gate)
{
    /// <summary>Signing names this endpoint answers to: control plane, data plane, jobs data plane.</summary>
    private static readonly string[] Services = ["iot", "iotdata", "iot-jobs-data", "execute-api"];

    /// <summary>
    /// Paths served without a signature: health checks, Prometheus metrics, MQTT over WebSockets,
    /// the enableUrl of topic rule destinations (whose token is the credential), and firmware
    /// downloads (a pre-signed link is the credential, checked by the download route).
    /// </summary>
    private static readonly string[] Anonymous = ["/health", "/healthz", "/readyz", "/metrics", "/mqtt", "/confirmdestination", "/firmware"];

    /// <summary>True for the paths served without a signature (health, metrics, /mqtt, destination confirmation, firmware downloads).</summary>
    public static bool IsAnonymous(string path) =>
        Anonymous.Any(p => path.Equals(p, StringComparison.Ordinal) || path.StartsWith(p + "/", StringComparison.Ordinal));

    public async Task InvokeAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "/";
        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? path;
        if (raw.Length > limits.MaxUriBytes)
        {
            await AwsResults.Error("RequestUriTooLongException", StatusCodes.Status414RequestUriTooLong,
                $"The request target is {raw.Length} bytes; at most {limits.MaxUriBytes} are served: use shorter names or send the values in the body.").ExecuteAsync(context);
            return;
        }

        if (IsAnonymous(path))
        {
            await next(context);
            return;
        }

        // A console request (ConsoleMiddleware checked its session and CSRF token): it acts as the
        // session's key, within the same body limit as a signed request.
        if (context.Items["trellis.sessionKey"] is string sessionKey)
        {
            var sessionLimit = limits.BodyLimitFor(path);
            if (context.Request.ContentLength > sessionLimit)
            {
                await AwsResults.Error(new Core.Errors.TrellisError.RequestEntityTooLarge($"The body is {context.Request.ContentLength} bytes; {path} takes at most {sessionLimit}.")).ExecuteAsync(context);
                return;
            }

            if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sessionSize)
            {
                sessionSize.MaxRequestBodySize = sessionLimit;
            }

            context.Items["trellis.accessKeyId"] = sessionKey;
            context.Items["trellis.signingService"] = context.Request.Headers["X-Trellis-Service"].ToString() is { Length: > 0 } service && Services.Contains(service) ? service : "iot";
            await next(context);
            return;
        }

        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in context.Request.Headers)
        {
            headers[name.ToLowerInvariant()] = string.Join(',', values.ToArray());
        }

        if (!headers.ContainsKey("host") && context.Request.Host.HasValue)
        {
            headers["host"] = context.Request.Host.Value;
        }

        var question = raw.IndexOf('?', StringComparison.Ordinal);
        var request = new SigV4Request(context.Request.Method, question < 0 ? raw : raw[..question], question < 0 ? string.Empty : raw[(question + 1)..], headers, ReadOnlyMemory<byte>.Empty);
        var result = verifier.VerifyHeaders(request, Services);
        if (!result.Success)
        {
            await RefuseAsync(context, result);
            return;
        }

        // A signed x-amz-content-sha256 lets the signature be checked before the body is read.
        var declared = headers.TryGetValue("x-amz-content-sha256", out var hash) && hash.Length == 64 && hash.All(char.IsAsciiHexDigitLower) ? hash : null;
        if (declared is not null && verifier.VerifySignature(request, declared) is { Success: false } refused)
        {
            await RefuseAsync(context, refused);
            return;
        }

        if (ApiLimits.IsStreamedUpload(context.Request))
        {
            // An image of hundreds of megabytes is never buffered: the signature is checked now over
            // the declared SHA-256, and the handler checks the bytes against it as it stores them.
            if (declared is null)
            {
                await RefuseAsync(context, SigV4Result.Fail("InvalidSignatureException", "A firmware upload must sign its body's SHA-256 in x-amz-content-sha256 (lower-case hex)."));
                return;
            }

            if (context.Request.ContentLength > limits.MaxFirmwareBytes)
            {
                await AwsResults.Error(new Core.Errors.TrellisError.RequestEntityTooLarge($"The image is {context.Request.ContentLength} bytes; at most {limits.MaxFirmwareBytes} are taken (TRELLIS_Api__MaxFirmwareBytes).")).ExecuteAsync(context);
                return;
            }

            if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
            {
                size.MaxRequestBodySize = limits.MaxFirmwareBytes;
            }

            context.Items["trellis.accessKeyId"] = result.AccessKeyId;
            context.Items["trellis.signingService"] = result.Service;
            context.Items["trellis.payloadSha256"] = declared;
            await next(context);
            return;
        }

        var limit = limits.BodyLimitFor(path);
        var length = context.Request.ContentLength;
        var chunked = context.Request.Headers.TransferEncoding.Count > 0;
        if (length > limit)
        {
            await AwsResults.Error(new Core.Errors.TrellisError.RequestEntityTooLarge($"The body is {length} bytes; {path} takes at most {limit}.")).ExecuteAsync(context);
            return;
        }

        byte[]? buffer = null;
        var read = 0;
        if (length > 0 || chunked)
        {
            if (!await gate.Bodies.WaitAsync(limits.BodyQueueTimeout, context.RequestAborted))
            {
                await AwsResults.Error(new Core.Errors.TrellisError.Throttling($"{limits.MaxConcurrentBodies} request bodies are being received already: retry shortly.")).ExecuteAsync(context);
                return;
            }

            try
            {
                buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(length ?? 16 * 1024, limit) + 1);
                while (true)
                {
                    if (read == buffer.Length)
                    {
                        if (read > limit)
                        {
                            break;
                        }

                        var larger = ArrayPool<byte>.Shared.Rent(Math.Min(buffer.Length * 2, limit + 1));
                        buffer.AsSpan(0, read).CopyTo(larger);
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = larger;
                    }

                    int n;
                    try
                    {
                        n = await context.Request.Body.ReadAsync(buffer.AsMemory(read, Math.Min(buffer.Length, limit + 1) - read), context.RequestAborted);
                    }
                    catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
                    {
                        read = limit + 1; // Kestrel counted the bytes it had seen past its own cap
                        break;
                    }

                    if (n == 0)
                    {
                        break;
                    }

                    read += n;
                    if (read > limit)
                    {
                        break;
                    }
                }
            }
            finally
            {
                gate.Bodies.Release();
            }

            if (read > limit)
            {
                ArrayPool<byte>.Shared.Return(buffer);
                await AwsResults.Error(new Core.Errors.TrellisError.RequestEntityTooLarge($"The body is larger than {limit} bytes, the most {path} takes.")).ExecuteAsync(context);
                return;
            }
        }

        try
        {
            var body = buffer is null ? ReadOnlyMemory<byte>.Empty : buffer.AsMemory(0, read);
            var bodyHash = SigV4Verifier.Hex(SHA256.HashData(body.Span));
            if (declared is not null && declared != bodyHash)
            {
                await RefuseAsync(context, SigV4Result.Fail("InvalidSignatureException", "x-amz-content-sha256 does not match the body received."));
                return;
            }

            result = declared is not null ? result : verifier.VerifySignature(request, bodyHash);
            if (!result.Success)
            {
                await RefuseAsync(context, result);
                return;
            }

            context.Request.Body = buffer is null ? Stream.Null : new MemoryStream(buffer, 0, read, writable: false);
            context.Items["trellis.accessKeyId"] = result.AccessKeyId;
            context.Items["trellis.signingService"] = result.Service;
            await next(context);
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    private static Task RefuseAsync(HttpContext context, SigV4Result result) =>
        AwsResults.Error(result.ErrorType!, StatusCodes.Status403Forbidden, result.Message!).ExecuteAsync(context);
}

/// <summary>The slots for request bodies being received (<see cref="ApiLimits.MaxConcurrentBodies"/>).</summary>
public sealed class RequestBodyGate(ApiLimits limits) : IDisposable
{
    public SemaphoreSlim Bodies { get; } = new(limits.MaxConcurrentBodies, limits.MaxConcurrentBodies);

    public void Dispose() => Bodies.Dispose();
}

/// <summary>Limits of the HTTP API before and while a body is read (<c>TRELLIS_Api__&lt;Name&gt;</c>).</summary>
public sealed class ApiLimits
{
    /// <summary>Largest request body of a management or data-plane call, in bytes.</summary>
    [System.ComponentModel.DataAnnotations.Range(1024, 64 * 1024 * 1024)]
    public int MaxBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>Largest body of an HTTPS publish (<c>POST /topics/…</c>), in bytes: the MQTT packet limit.</summary>
    [System.ComponentModel.DataAnnotations.Range(1024, 64 * 1024 * 1024)]
    public int MaxPublishBodyBytes { get; set; } = 128 * 1024;

    /// <summary>Request bodies being received at once; more wait up to <see cref="BodyQueueTimeout"/>, then get 429.</summary>
    [System.ComponentModel.DataAnnotations.Range(1, 4096)]
    public int MaxConcurrentBodies { get; set; } = 32;

    /// <summary>Longest request target (path and query), in bytes; longer gets 414.</summary>
    [System.ComponentModel.DataAnnotations.Range(256, 65536)]
    public int MaxUriBytes { get; set; } = 8192;

    public TimeSpan BodyQueueTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The largest firmware image an upload may stream (PUT /api/firmware/{name}); it is written to disk as it arrives, never held in memory.</summary>
    [System.ComponentModel.DataAnnotations.Range(1024, 64L * 1024 * 1024 * 1024)]
    public long MaxFirmwareBytes { get; set; } = 2L * 1024 * 1024 * 1024;

    /// <summary>Requests whose body is streamed to their handler instead of read here (firmware uploads).</summary>
    public static bool IsStreamedUpload(HttpRequest request) =>
        HttpMethods.IsPut(request.Method) && request.Path.StartsWithSegments("/api/firmware", StringComparison.Ordinal);

    public int BodyLimitFor(string path) => path.StartsWith("/topics/", StringComparison.Ordinal) ? MaxPublishBodyBytes : MaxBodyBytes;
}
