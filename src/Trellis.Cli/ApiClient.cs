using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Trellis.Security.SigV4;

namespace Trellis.Cli;

/// <summary>The answer to one API call: status, JSON body, and the AWS error type and message when it failed.</summary>
internal sealed record ApiAnswer(int Status, JsonNode? Body, string? ErrorType, string? Message)
{
    public bool Ok => Status is >= 200 and < 300;
}

/// <summary>SigV4-signed calls to a Trellis endpoint, as boto3 makes them (signing name <c>iot</c>).</summary>
internal sealed class ApiClient(Uri endpoint, string accessKeyId, string secret, IEnumerable<string>? caBundles = null) : IDisposable
{
    private readonly HttpClient _http = new(Handler(caBundles ?? [])) { BaseAddress = endpoint, Timeout = TimeSpan.FromSeconds(30) };

    /// <summary>
    /// Over HTTPS the server's certificate must chain to the system's roots or, when given, to
    /// one of <paramref name="caBundles"/> (the data folder's <c>ca.pem</c>, which signs Trellis's server certificate; AWS_CA_BUNDLE), and name the host.
    /// </summary>
    private static SocketsHttpHandler Handler(IEnumerable<string> caBundles)
    {
        var handler = new SocketsHttpHandler();
        var roots = new System.Security.Cryptography.X509Certificates.X509Certificate2Collection();
        foreach (var bundle in caBundles.Where(File.Exists))
        {
            roots.ImportFromPemFile(bundle);
        }

        if (roots.Count > 0)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, presented, errors) =>
            {
                if (errors == System.Net.Security.SslPolicyErrors.None)
                {
                    return true; // the system's roots know it
                }

                if (errors != System.Net.Security.SslPolicyErrors.RemoteCertificateChainErrors || certificate is null)
                {
                    return false; // a name mismatch or no certificate is never forgiven
                }

                using var chain = new System.Security.Cryptography.X509Certificates.X509Chain();
                chain.ChainPolicy.TrustMode = System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.RevocationMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck;
                chain.ChainPolicy.CustomTrustStore.AddRange(roots);
                if (presented is not null)
                {
                    foreach (var element in presented.ChainElements)
                    {
                        chain.ChainPolicy.ExtraStore.Add(element.Certificate); // intermediates the server sent
                    }
                }

                return chain.Build(certificate as System.Security.Cryptography.X509Certificates.X509Certificate2 ?? System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
            };
        }

        return handler;
    }

    public Uri Endpoint => endpoint;

    /// <summary>Sends a request. <paramref name="path"/> must be percent-encoded already (use <see cref="Segment"/>).</summary>
    public Task<ApiAnswer> SendAsync(HttpMethod method, string path, string? query = null, JsonNode? body = null, CancellationToken cancellationToken = default) =>
        SendAsync(method, path, query, body, null, cancellationToken);

    /// <summary>As above, with extra headers (AWS puts some parameters in headers, e.g. <c>x-amzn-principal</c>).</summary>
    public async Task<ApiAnswer> SendAsync(HttpMethod method, string path, string? query, JsonNode? body, IReadOnlyDictionary<string, string>? extraHeaders, CancellationToken cancellationToken)
    {
        var bytes = body is null ? [] : Encoding.UTF8.GetBytes(body.ToJsonString());
        var host = endpoint.IsDefaultPort ? endpoint.Host : $"{endpoint.Host}:{endpoint.Port}";
        var headers = SigV4Signer.Sign(method.Method, host, path, query ?? string.Empty, bytes, accessKeyId, secret, "us-east-1", "iot", DateTimeOffset.UtcNow);
        using var request = new HttpRequestMessage(method, path + (string.IsNullOrEmpty(query) ? string.Empty : "?" + query));
        foreach (var (name, value) in headers.Concat(extraHeaders ?? new Dictionary<string, string>()))
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        if (body is not null)
        {
            request.Content = new ByteArrayContent(bytes);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        using var response = await _http.SendAsync(request, cancellationToken);
        return await AnswerAsync(response, cancellationToken);
    }

    /// <summary>A signed GET whose successful answer is a file: streamed to <paramref name="file"/>.</summary>
    public async Task<ApiAnswer> DownloadAsync(string path, string? query, string file, CancellationToken cancellationToken)
    {
        var host = endpoint.IsDefaultPort ? endpoint.Host : $"{endpoint.Host}:{endpoint.Port}";
        var headers = SigV4Signer.Sign("GET", host, path, query ?? string.Empty, ReadOnlyMemory<byte>.Empty, accessKeyId, secret, "us-east-1", "iot", DateTimeOffset.UtcNow);
        using var request = new HttpRequestMessage(HttpMethod.Get, path + (string.IsNullOrEmpty(query) ? string.Empty : "?" + query));
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        var status = (int)response.StatusCode;
        if (!response.IsSuccessStatusCode)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            var errorType = response.Headers.TryGetValues("x-amzn-ErrorType", out var types) ? types.FirstOrDefault() : $"HTTP {status}";
            string? message = null;
            try
            {
                message = JsonNode.Parse(text)?["message"]?.GetValue<string>();
            }
            catch (System.Text.Json.JsonException)
            {
            }

            return new ApiAnswer(status, null, errorType, message);
        }

        await using (var output = File.Create(file))
        {
            await response.Content.CopyToAsync(output, cancellationToken);
        }

        return new ApiAnswer(status, new JsonObject { ["file"] = Path.GetFullPath(file), ["bytes"] = new FileInfo(file).Length }, null, null);
    }

    /// <summary>
    /// A signed PUT whose body is a file, streamed (never read whole into memory): its SHA-256 is
    /// computed first and signed, and the server checks the bytes against it.
    /// </summary>
    public async Task<ApiAnswer> UploadAsync(string path, string? query, string file, CancellationToken cancellationToken)
    {
        string hash;
        await using (var read = File.OpenRead(file))
        {
            hash = Convert.ToHexStringLower(await System.Security.Cryptography.SHA256.HashDataAsync(read, cancellationToken));
        }

        var host = endpoint.IsDefaultPort ? endpoint.Host : $"{endpoint.Host}:{endpoint.Port}";
        var headers = SigV4Signer.SignPayloadHash("PUT", host, path, query ?? string.Empty, hash, accessKeyId, secret, "us-east-1", "iot", DateTimeOffset.UtcNow);
        await using var content = File.OpenRead(file);
        using var request = new HttpRequestMessage(HttpMethod.Put, path + (string.IsNullOrEmpty(query) ? string.Empty : "?" + query)) { Content = new StreamContent(content, 1 << 16) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        request.Content.Headers.ContentLength = content.Length;
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        using var response = await _http.SendAsync(request, cancellationToken);
        return await AnswerAsync(response, cancellationToken);
    }

    public static string Segment(string value) => Uri.EscapeDataString(value);

    /// <summary>The API's answer: status, JSON body (when there is one) and, on failure, AWS's error type and message.</summary>
    private static async Task<ApiAnswer> AnswerAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        JsonNode? json = null;
        try
        {
            json = text.Length == 0 ? null : JsonNode.Parse(text);
        }
        catch (System.Text.Json.JsonException)
        {
        }

        var status = (int)response.StatusCode;
        var errorType = response.Headers.TryGetValues("x-amzn-ErrorType", out var types) ? types.FirstOrDefault() : null;
        return new ApiAnswer(status, json, errorType ?? (status >= 400 ? $"HTTP {status}" : null), json?["message"]?.GetValue<string>());
    }

    public void Dispose() => _http.Dispose();
}

/// <summary>Where the CLI's credentials come from: environment, the data folder's file, or an AWS shared-credentials file.</summary>
internal static class CliCredentials
{
    public static (string AccessKeyId, string Secret)? Resolve(string dataDirectory, string? profile, out string tried)
    {
        if (Environment.GetEnvironmentVariable("AWS_ACCESS_KEY_ID") is { Length: > 0 } envKey
            && Environment.GetEnvironmentVariable("AWS_SECRET_ACCESS_KEY") is { Length: > 0 } envSecret)
        {
            tried = "AWS_ACCESS_KEY_ID";
            return (envKey, envSecret);
        }

        var files = new List<string> { Path.Combine(dataDirectory, "credentials") };
        if (Environment.GetEnvironmentVariable("AWS_SHARED_CREDENTIALS_FILE") is { Length: > 0 } shared)
        {
            files.Add(shared);
        }

        files.Add(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".aws", "credentials"));
        var name = profile ?? Environment.GetEnvironmentVariable("AWS_PROFILE") ?? "trellis";
        tried = $"profile '{name}' in {string.Join(", ", files)}";
        foreach (var file in files.Where(File.Exists))
        {
            if (Trellis.Registry.AccessKeys.ReadProfile(file, name) is { } found)
            {
                return found;
            }
        }

        return null;
    }
}
