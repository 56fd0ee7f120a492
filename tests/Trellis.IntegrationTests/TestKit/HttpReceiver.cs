using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Trellis.IntegrationTests.TestKit;

/// <summary>
/// A real HTTP endpoint for rule actions (HttpListener on a free loopback port). It answers 503 to
/// its first <c>failures</c> messages (and to all while <see cref="Down"/>), then 200, recording what it took. A topic rule destination
/// confirmation message is recorded apart and, when <c>confirm</c> is set, answered as an owner
/// does: by a GET of its enableUrl.
/// </summary>
public sealed class HttpReceiver : IDisposable
{
    private static readonly HttpClient Client = new();
    private readonly HttpListener _listener = new();
    private readonly bool _confirm;
    private int _failures;

    public HttpReceiver(int failures = 0, bool confirm = true)
    {
        _failures = failures;
        _confirm = confirm;
        Url = $"http://127.0.0.1:{FreePort()}/hook/";
        _listener.Prefixes.Add(Url);
        _listener.Start();
        _ = Task.Run(ServeAsync);
    }

    public string Url { get; }

    public int Refused { get; private set; }

    /// <summary>While set, every message is answered 503 (as if the service behind it were down).</summary>
    public bool Down { get; set; }

    public List<(string Body, string? ApiKey, string Path)> Received { get; } = [];

    /// <summary>Confirmation messages received (arn, confirmationToken, enableUrl, messageType).</summary>
    public List<JsonObject> Confirmations { get; } = [];

    /// <summary>The Content-Length of each confirmation request (-1: none, a chunked body), and its body's length in bytes.</summary>
    public List<(long Declared, int Actual)> ConfirmationLengths { get; } = [];

    /// <summary>Status codes of the enableUrl GETs made.</summary>
    public List<int> EnableAnswers { get; } = [];

    /// <summary>Stops answering: the port is closed afterwards.</summary>
    public void Dispose() => _listener.Close();

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
            var body = await reader.ReadToEndAsync();
            if (TryParse(body) is { } json && json["messageType"]?.GetValue<string>() == "DestinationConfirmation")
            {
                lock (Confirmations)
                {
                    ConfirmationLengths.Add((context.Request.ContentLength64, Encoding.UTF8.GetByteCount(body)));
                    Confirmations.Add(json);
                }

                context.Response.Close();
                if (_confirm)
                {
                    using var answer = await Client.GetAsync(json["enableUrl"]!.GetValue<string>());
                    lock (EnableAnswers)
                    {
                        EnableAnswers.Add((int)answer.StatusCode);
                    }
                }

                continue;
            }

            if (Down || _failures > 0)
            {
                _failures = Math.Max(0, _failures - 1);
                Refused++;
                context.Response.StatusCode = 503;
            }
            else
            {
                lock (Received)
                {
                    Received.Add((body, context.Request.Headers["x-api-key"], context.Request.Url!.AbsolutePath));
                }
            }

            context.Response.Close();
        }
    }

    private static JsonObject? TryParse(string body)
    {
        try
        {
            return JsonNode.Parse(body) as JsonObject;
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }
}
