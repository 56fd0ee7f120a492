using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>
/// The web console's door over real HTTP (a browser's requests, made by HttpClient with a cookie
/// jar): its files with a strict Content-Security-Policy, sign-in with an API key, a session cookie
/// that is HttpOnly and SameSite=Strict, changes only with the session's CSRF token, roles exactly as
/// on the API, and sign-out, rotation and deletion ending the session.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class ConsoleSessionTests(TrellisHost host)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private (HttpClient Client, CookieContainer Cookies) Browser()
    {
        var cookies = new CookieContainer();
        return (new HttpClient(new HttpClientHandler { CookieContainer = cookies }) { BaseAddress = new Uri(host.Endpoint) }, cookies);
    }

    private static async Task<JsonNode> SignInAsync(HttpClient client, string key, string secret)
    {
        using var response = await client.PostAsJsonAsync("/console/session", new { accessKeyId = key, secretAccessKey = secret }, Ct);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync(Ct));
        var cookie = Assert.Single(response.Headers.GetValues("Set-Cookie"));
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", cookie, StringComparison.OrdinalIgnoreCase);
        return JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!;
    }

    private static async Task<HttpStatusCode> SendAsync(HttpClient client, HttpMethod method, string path, string? csrf)
    {
        using var request = new HttpRequestMessage(method, path) { Content = method == HttpMethod.Get ? null : JsonContent.Create(new { }) };
        if (csrf is not null)
        {
            request.Headers.Add("X-Trellis-Csrf", csrf);
        }

        using var response = await client.SendAsync(request, Ct);
        return response.StatusCode;
    }

    [Fact]
    public async Task The_console_is_served_and_signs_in_with_a_key_whose_role_and_csrf_token_govern_every_change()
    {
        var (browser, _) = Browser();
        using var client = browser;

        // The console's files: served from the build, with a strict policy, small.
        using (var page = await client.GetAsync("/", Ct))
        {
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Contains("script-src 'self'", page.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
            Assert.Contains("/console/app.js", await page.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }

        var total = 0L;
        foreach (var file in new[] { "/", "/console/app.js", "/console/app.css" })
        {
            total += (await client.GetByteArrayAsync(file, Ct)).Length;
        }

        Assert.InRange(total, 1, 500_000);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/console/session", Ct)).StatusCode);

        // A wrong secret is refused; the admin key signs in.
        using (var wrong = await client.PostAsJsonAsync("/console/session", new { accessKeyId = host.Server.AccessKeys.AdminAccessKeyId, secretAccessKey = "nope" }, Ct))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        }

        var admin = await SignInAsync(client, host.Server.AccessKeys.AdminAccessKeyId, host.Server.AccessKeys.SecretFor(host.Server.AccessKeys.AdminAccessKeyId)!);
        Assert.Equal("admin", admin["role"]!.GetValue<string>());
        var csrf = admin["csrfToken"]!.GetValue<string>();
        Assert.Equal(HttpStatusCode.OK, await SendAsync(client, HttpMethod.Get, "/things", null));

        // A change without the CSRF token (what a forged form can send) is refused; with it, made.
        var thing = TrellisHost.Unique("console");
        Assert.Equal(HttpStatusCode.Forbidden, await SendAsync(client, HttpMethod.Post, $"/things/{thing}", null));
        Assert.False(host.Server.Registry.DescribeThing(thing).IsSuccess);
        Assert.Equal(HttpStatusCode.OK, await SendAsync(client, HttpMethod.Post, $"/things/{thing}", csrf));
        Assert.True(host.Server.Registry.DescribeThing(thing).IsSuccess);

        // A request with the cookie and a signature of its own is judged by its signature.
        using (var signed = new HttpRequestMessage(HttpMethod.Get, "/things"))
        {
            signed.Headers.TryAddWithoutValidation("Authorization", "AWS4-HMAC-SHA256 Credential=TRLSAAAAAAAAAAAAAAAA/20261205/us-east-1/iot/aws4_request, SignedHeaders=host, Signature=00");
            using var answer = await client.SendAsync(signed, Ct);
            Assert.Equal(HttpStatusCode.Forbidden, answer.StatusCode);
        }

        // A viewer's session reads and cannot change, CSRF token or not; rotating its key ends it.
        var viewerKey = await host.CreateApiUserAsync(TrellisHost.Unique("consoleviewer"), "viewer", Ct);
        var (viewerBrowser, _) = Browser();
        using var viewerClient = viewerBrowser;
        var viewer = await SignInAsync(viewerClient, viewerKey.KeyId, viewerKey.Secret);
        Assert.Equal("viewer", viewer["role"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, await SendAsync(viewerClient, HttpMethod.Get, $"/things/{thing}", null));
        Assert.Equal(HttpStatusCode.Forbidden, await SendAsync(viewerClient, HttpMethod.Delete, $"/things/{thing}", viewer["csrfToken"]!.GetValue<string>()));
        Assert.True(host.Server.Registry.DescribeThing(thing).IsSuccess);
        var rotated = await host.SignedRequestAsync("POST", $"/api/users/{viewerKey.KeyId}/rotate", null, Ct);
        Assert.Equal(200, rotated["status"]!.GetValue<int>());
        Assert.Equal(HttpStatusCode.Unauthorized, await SendAsync(viewerClient, HttpMethod.Get, "/things", null));

        // A stale session cookie never stands in the way of the unsigned paths.
        Assert.Equal(HttpStatusCode.OK, await SendAsync(viewerClient, HttpMethod.Get, "/healthz", null));

        // Signing out needs the token too, and ends the session.
        Assert.Equal(HttpStatusCode.Forbidden, await SendAsync(client, HttpMethod.Delete, "/console/session", null));
        Assert.Equal(HttpStatusCode.OK, await SendAsync(client, HttpMethod.Delete, "/console/session", csrf));
        Assert.Equal(HttpStatusCode.Unauthorized, await SendAsync(client, HttpMethod.Get, "/console/session", null));
    }
}
