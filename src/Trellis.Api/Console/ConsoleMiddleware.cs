using System.Collections.Concurrent;
using Trellis.Registry;

namespace Trellis.Api.Console;

/// <summary>
/// The web console's door, ahead of SigV4: serves the console's files (from this assembly, no CDN),
/// signs people in and out with an API user's access key id and secret, and lets a request that
/// carries a console session cookie (and no SigV4 signature) act as that session's key. A change
/// (any method but GET and HEAD) must also carry the session's CSRF token in
/// <c>X-Trellis-Csrf</c>, which a page of another origin cannot read; the cookie is HttpOnly and
/// SameSite=Strict. Roles then apply exactly as for a signed request (RoleMiddleware).
/// </summary>
public sealed class ConsoleMiddleware(RequestDelegate next, ConsoleSessions sessions, ApiUsers users, TimeProvider time)
{
    public const string CsrfHeader = "X-Trellis-Csrf";

    /// <summary>MQTT over WebSockets as the signed-in user (the console's MQTT client and live views).</summary>
    public const string MqttPath = "/console/mqtt";

    /// <summary>The console's files: name → (content type, bytes), read once from the assembly's resources.</summary>
    private static readonly Dictionary<string, (string Type, byte[] Bytes)> Files = LoadFiles();

    private static readonly ConcurrentDictionary<string, (int Failures, DateTimeOffset Since)> Failures = new(StringComparer.Ordinal);

    public async Task InvokeAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "/";
        if (HttpMethods.IsGet(context.Request.Method) && (path is "/" or "/console" or "/console/" || path.StartsWith("/console/", StringComparison.Ordinal) && path is not "/console/session" and not MqttPath))
        {
            await ServeFileAsync(context, path is "/" or "/console" or "/console/" ? "index.html" : path["/console/".Length..]);
            return;
        }

        if (path == "/console/session")
        {
            await SessionAsync(context);
            return;
        }

        // A console request: the session cookie and no signature of its own, on a path that needs
        // one (a stale cookie never stands in the way of a health probe or a firmware download).
        if (!SigV4Middleware.IsAnonymous(path) && context.Request.Cookies.TryGetValue(ConsoleSessions.Cookie, out var id) && !context.Request.Headers.ContainsKey("Authorization")
            && !context.Request.Query.ContainsKey("X-Amz-Signature"))
        {
            if (sessions.Find(id) is not { } session || users.RoleOf(session.AccessKeyId) is null)
            {
                await AwsResults.Error("UnrecognizedClientException", StatusCodes.Status401Unauthorized, "The console session has ended (signed out, timed out, or its key was deleted or rotated): sign in again.").ExecuteAsync(context);
                return;
            }

            // The MQTT socket's upgrade (GET, or CONNECT for WebSockets over HTTP/2) is checked by its origin below instead.
            var mqttUpgrade = path == MqttPath && (HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsConnect(context.Request.Method));
            if (!mqttUpgrade && !HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method) && !CsrfMatches(context, session))
            {
                await AwsResults.Error("AccessDeniedException", StatusCodes.Status403Forbidden, $"A change through a console session must carry the session's {CsrfHeader} header.").ExecuteAsync(context);
                return;
            }

            // The console's MQTT client (a WebSocket): only from a page of this origin, so a page
            // elsewhere cannot open one with the operator's cookie (cross-site WebSocket hijacking).
            if (path == MqttPath && !SameOrigin(context))
            {
                await AwsResults.Error("AccessDeniedException", StatusCodes.Status403Forbidden, "The console's MQTT WebSocket opens only from the console's own pages (the Origin header must be this server).").ExecuteAsync(context);
                return;
            }

            context.Items["trellis.sessionKey"] = session.AccessKeyId;
            if (path == MqttPath)
            {
                context.Items["trellis.sessionEnded"] = sessions.Ended(session); // the socket closes when the session ends
            }
        }

        await next(context);
    }

    private static bool SameOrigin(HttpContext context) =>
        context.Request.Headers.Origin.ToString() is { Length: > 0 } origin
        && Uri.TryCreate(origin, UriKind.Absolute, out var uri)
        && string.Equals(uri.Authority, context.Request.Host.Value, StringComparison.OrdinalIgnoreCase)
        && string.Equals(uri.Scheme, context.Request.Scheme, StringComparison.OrdinalIgnoreCase);

    private static bool CsrfMatches(HttpContext context, ConsoleSession session) =>
        context.Request.Headers[CsrfHeader].ToString() is { Length: > 0 } given
        && System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(given), System.Text.Encoding.UTF8.GetBytes(session.CsrfToken));

    private async Task SessionAsync(HttpContext context)
    {
        var method = context.Request.Method;
        context.Request.Cookies.TryGetValue(ConsoleSessions.Cookie, out var id);
        var current = sessions.Find(id);
        if (HttpMethods.IsGet(method))
        {
            await (current is not null && users.RoleOf(current.AccessKeyId) is not null
                ? Describe(current).ExecuteAsync(context)
                : AwsResults.Error("UnrecognizedClientException", StatusCodes.Status401Unauthorized, "Not signed in.").ExecuteAsync(context));
            return;
        }

        if (HttpMethods.IsDelete(method))
        {
            if (current is not null)
            {
                if (!CsrfMatches(context, current))
                {
                    await AwsResults.Error("AccessDeniedException", StatusCodes.Status403Forbidden, $"Signing out needs the session's {CsrfHeader} header.").ExecuteAsync(context);
                    return;
                }

                sessions.Remove(current.Id);
            }

            context.Response.Cookies.Delete(ConsoleSessions.Cookie, CookieOptions(context));
            await AwsResults.Empty().ExecuteAsync(context);
            return;
        }

        if (!HttpMethods.IsPost(method))
        {
            await AwsResults.Error("MethodNotAllowedException", StatusCodes.Status405MethodNotAllowed, "GET (who is signed in), POST (sign in) or DELETE (sign out).").ExecuteAsync(context);
            return;
        }

        var source = context.Connection.RemoteIpAddress?.ToString() ?? "?";
        var now = time.GetUtcNow();
        if (Failures.TryGetValue(source, out var failed) && failed.Failures >= 10 && now - failed.Since < TimeSpan.FromMinutes(1))
        {
            await AwsResults.Error("ThrottlingException", StatusCodes.Status429TooManyRequests, "Too many failed sign-ins from this address: wait a minute.").ExecuteAsync(context);
            return;
        }

        const string Shape = "Sign in with a JSON body of at most 4 KB: {\"accessKeyId\": \"…\", \"secretAccessKey\": \"…\"}.";
        if (context.Request.ContentLength > 4096)
        {
            await AwsResults.Error("InvalidRequestException", StatusCodes.Status400BadRequest, Shape).ExecuteAsync(context);
            return;
        }

        if (context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = 4096; // before any credential is known, nothing larger is read
        }

        Result<JsonObject> body;
        try
        {
            body = await RequestBody.ReadObjectAsync(context.Request, context.RequestAborted);
        }
        catch (BadHttpRequestException)
        {
            await AwsResults.Error("InvalidRequestException", StatusCodes.Status400BadRequest, Shape).ExecuteAsync(context);
            return;
        }

        var key = body.IsSuccess ? body.Value!["accessKeyId"] is JsonValue k && k.TryGetValue<string>(out var ks) ? ks : null : null;
        var secret = body.IsSuccess ? body.Value!["secretAccessKey"] is JsonValue s && s.TryGetValue<string>(out var ss) ? ss : null : null;
        if (key is null || secret is null || !users.Verify(key, System.Text.Encoding.UTF8.GetBytes(secret)))
        {
            if (Failures.Count > 10_000)
            {
                foreach (var old in Failures.Where(f => now - f.Value.Since > TimeSpan.FromMinutes(1)).Select(f => f.Key).ToList())
                {
                    Failures.TryRemove(old, out _); // the table of failing sources stays bounded
                }
            }

            Failures.AddOrUpdate(source, _ => (1, now), (_, f) => now - f.Since > TimeSpan.FromMinutes(1) ? (1, now) : (f.Failures + 1, f.Since));
            await Task.Delay(TimeSpan.FromMilliseconds(250), context.RequestAborted);
            await AwsResults.Error("UnrecognizedClientException", StatusCodes.Status401Unauthorized, "Unknown access key id or wrong secret: use an API user's key (trellis users create) or the data folder's admin key.").ExecuteAsync(context);
            return;
        }

        Failures.TryRemove(source, out _);
        if (current is not null)
        {
            sessions.Remove(current.Id); // a new sign-in never keeps an old session id
        }

        var created = sessions.Create(key);
        context.Response.Cookies.Append(ConsoleSessions.Cookie, created.Id, CookieOptions(context));
        await Describe(created).ExecuteAsync(context);
    }

    private static CookieOptions CookieOptions(HttpContext context) => new()
    {
        HttpOnly = true,
        SameSite = SameSiteMode.Strict,
        Secure = context.Request.IsHttps,
        Path = "/",
        MaxAge = ConsoleSessions.MaxAge,
    };

    private IResult Describe(ConsoleSession session) => AwsResults.Json(new JsonObject
    {
        ["accessKeyId"] = session.AccessKeyId,
        ["name"] = users.List().FirstOrDefault(u => u.AccessKeyId == session.AccessKeyId)?.Name ?? "admin (data folder key)",
        ["role"] = users.RoleOf(session.AccessKeyId),
        ["csrfToken"] = session.CsrfToken,
    });

    private static async Task ServeFileAsync(HttpContext context, string name)
    {
        if (!Files.TryGetValue(name, out var file))
        {
            await AwsResults.Error("ResourceNotFoundException", StatusCodes.Status404NotFound, $"The console has no file '{name}'.").ExecuteAsync(context);
            return;
        }

        var headers = context.Response.Headers;
        headers.ContentType = file.Type;
        headers.CacheControl = "no-cache";
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers.XFrameOptions = "DENY";
        headers.ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";
        await context.Response.Body.WriteAsync(file.Bytes, context.RequestAborted);
    }

    private static Dictionary<string, (string Type, byte[] Bytes)> LoadFiles()
    {
        var assembly = typeof(ConsoleMiddleware).Assembly;
        var files = new Dictionary<string, (string, byte[])>(StringComparer.Ordinal);
        foreach (var resource in assembly.GetManifestResourceNames().Where(r => r.StartsWith("console/", StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            var name = resource["console/".Length..];
            var type = Path.GetExtension(name) switch
            {
                ".html" => "text/html; charset=utf-8",
                ".js" => "text/javascript; charset=utf-8",
                ".css" => "text/css; charset=utf-8",
                ".svg" => "image/svg+xml",
                _ => "application/octet-stream",
            };
            files[name] = (type, copy.ToArray());
        }

        return files;
    }
}
