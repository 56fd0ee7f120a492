using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Trellis.Security.SigV4;

namespace Trellis.Api;

/// <summary>
/// Verifies AWS SigV4 on every management request. Unsigned, expired or wrongly signed requests
/// get 403 with an AWS error type and a message saying which.
/// </summary>
public sealed class SigV4Middleware(RequestDelegate next, SigV4Verifier verifier)
{
    /// <summary>Signing names this endpoint answers to: control plane, data plane, jobs data plane.</summary>
    private static readonly string[] Services = ["iot", "iotdata", "iot-jobs-data", "execute-api"];

    /// <summary>
    /// Paths served without a signature: health checks, Prometheus metrics, MQTT over WebSockets,
    /// and the enableUrl of topic rule destinations (whose token is the credential).
    /// </summary>
    private static readonly string[] Anonymous = ["/health", "/metrics", "/mqtt", "/confirmdestination"];

    public async Task InvokeAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "/";
        if (Anonymous.Any(p => path.Equals(p, StringComparison.Ordinal) || path.StartsWith(p + "/", StringComparison.Ordinal)))
        {
            await next(context);
            return;
        }

        context.Request.EnableBuffering();
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer, context.RequestAborted);
        context.Request.Body.Position = 0;

        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in context.Request.Headers)
        {
            headers[name.ToLowerInvariant()] = string.Join(',', values.ToArray());
        }

        if (!headers.ContainsKey("host") && context.Request.Host.HasValue)
        {
            headers["host"] = context.Request.Host.Value;
        }

        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? path;
        var question = raw.IndexOf('?', StringComparison.Ordinal);
        var rawPath = question < 0 ? raw : raw[..question];
        var rawQuery = question < 0 ? string.Empty : raw[(question + 1)..];
        var result = verifier.Verify(new SigV4Request(context.Request.Method, rawPath, rawQuery, headers, buffer.ToArray()), Services);
        if (!result.Success)
        {
            await AwsResults.Error(result.ErrorType!, StatusCodes.Status403Forbidden, result.Message!).ExecuteAsync(context);
            return;
        }

        context.Items["trellis.accessKeyId"] = result.AccessKeyId;
        await next(context);
    }
}
