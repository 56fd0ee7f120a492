using System.ComponentModel.DataAnnotations;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace Trellis.Rules.Notifications;

/// <summary>The SMTP server email notifications go through (<c>TRELLIS_Smtp__Host</c> and friends); no host, no email.</summary>
public sealed class SmtpOptions
{
    public string? Host { get; set; }

    [Range(1, 65535)]
    public int Port { get; set; } = 25;

    public string From { get; set; } = "trellis@localhost";

    public string? UserName { get; set; }

    public string? Password { get; set; }

    /// <summary>auto (STARTTLS when offered), starttls (required), tls (implicit, port 465) or none.</summary>
    [RegularExpression("^(auto|starttls|tls|none)$")]
    public string Security { get; set; } = "auto";

    public bool IsConfigured => !string.IsNullOrWhiteSpace(Host);
}

/// <summary>
/// Email notifications over SMTP with MailKit: one connection per batch, one message per entry (its
/// address is the comma-separated recipients, its payload the notification document). A batch cut
/// short is retried by the outbox from the first message not sent.
/// </summary>
public sealed class SmtpConnector(SmtpOptions options) : IConnector
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public async Task<(int Delivered, string? Error)> SendAsync(IReadOnlyList<OutboxEntry> batch, CancellationToken cancellationToken)
    {
        if (!options.IsConfigured)
        {
            return (0, "no SMTP server is set (TRELLIS_Smtp__Host)");
        }

        using var client = new SmtpClient { Timeout = 10_000 };
        var sent = 0;
        try
        {
            var security = options.Security switch
            {
                "starttls" => SecureSocketOptions.StartTls,
                "tls" => SecureSocketOptions.SslOnConnect,
                "none" => SecureSocketOptions.None,
                _ => SecureSocketOptions.StartTlsWhenAvailable,
            };
            await client.ConnectAsync(options.Host!, options.Port, security, cancellationToken);
            if (!string.IsNullOrEmpty(options.UserName))
            {
                await client.AuthenticateAsync(options.UserName, options.Password ?? string.Empty, cancellationToken);
            }

            foreach (var entry in batch)
            {
                using var message = Compose(entry);
                await client.SendAsync(message, cancellationToken);
                sent++;
            }

            await client.DisconnectAsync(quit: true, cancellationToken);
            return (sent, null);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or SmtpCommandException or SmtpProtocolException or AuthenticationException or SslHandshakeException or MailKit.ServiceNotConnectedException or TimeoutException)
        {
            return (sent, $"SMTP {options.Host}:{options.Port}: {e.Message}");
        }
    }

    private MimeMessage Compose(OutboxEntry entry)
    {
        var document = JsonNode.Parse(entry.Payload) as JsonObject ?? [];
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(options.From));
        foreach (var to in entry.Address.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            message.To.Add(MailboxAddress.Parse(to));
        }

        var severity = document["severity"]?.GetValue<string>();
        message.Subject = "[Trellis] " + (severity is null ? string.Empty : severity + ": ") + (document["subject"]?.GetValue<string>() ?? "notification");
        var body = new StringBuilder()
            .AppendLine(document["subject"]?.GetValue<string>())
            .AppendLine()
            .Append("Kind: ").AppendLine(document["kind"]?.GetValue<string>())
            .Append("Thing: ").AppendLine(document["thingName"]?.GetValue<string>() ?? "-")
            .AppendLine()
            .AppendLine(document["details"]?.ToJsonString(Indented));
        message.Body = new TextPart("plain") { Text = body.ToString() };
        return message;
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
