using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Trellis.Core.Errors;
using Trellis.Storage;

namespace Trellis.Rules;

/// <summary>A topic rule destination as stored: the URL prefix it confirms and where it stands.</summary>
public sealed record TopicRuleDestination(string Arn, string ConfirmationUrl, string Status, string? StatusReason, long CreatedMs, long UpdatedMs);

/// <summary>
/// HTTP topic rule destinations, as on AWS IoT: before a rule's http action may send anything to
/// a URL, the URL's owner proves that it wants the traffic. Creating a destination (directly, or
/// through a rule whose http action names a new confirmation URL) POSTs a confirmation message with
/// a token and an <c>enableUrl</c> to the confirmation URL; the destination is ENABLED once the
/// owner GETs the enableUrl or calls ConfirmTopicRuleDestination with the token. An http action may
/// send to a URL only while an ENABLED destination's confirmation URL is a prefix of it.
/// </summary>
public sealed partial class TopicRuleDestinations
{
    public const string Enabled = "ENABLED";
    public const string InProgress = "IN_PROGRESS";
    public const string Disabled = "DISABLED";
    public const string Error = "ERROR";

    private readonly SqliteDatabase _db;
    private readonly HttpClient _http;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Func<string, string> _arn;
    private readonly Lock _writeLock = new();
    private TopicRuleDestination[] _all = [];

    public TopicRuleDestinations(SqliteDatabase db, HttpClient http, TimeProvider time, ILogger<TopicRuleDestinations> logger, Func<string, string> arn)
    {
        _db = db;
        _http = http;
        _time = time;
        _logger = logger;
        _arn = arn;
        Reload();
    }

    /// <summary>
    /// Why an http action may not send to <paramref name="url"/>, or null when an ENABLED
    /// destination covers it. Cheap: read from memory on every message.
    /// </summary>
    public string? Refusal(string url)
    {
        TopicRuleDestination? covering = null;
        foreach (var destination in Volatile.Read(ref _all))
        {
            if (url.StartsWith(destination.ConfirmationUrl, StringComparison.Ordinal))
            {
                if (destination.Status == Enabled)
                {
                    return null;
                }

                covering ??= destination;
            }
        }

        return covering is null
            ? $"no topic rule destination covers {url}: create one for a prefix of it (CreateTopicRuleDestination) and confirm it"
            : $"the topic rule destination {covering.ConfirmationUrl} ({covering.Arn}) is {covering.Status}: " + covering.Status switch
            {
                InProgress => "its owner must confirm it (GET the enableUrl of the confirmation message, or ConfirmTopicRuleDestination with its token)",
                Disabled => "enable it with UpdateTopicRuleDestination",
                _ => $"{covering.StatusReason}; send a new confirmation with UpdateTopicRuleDestination status IN_PROGRESS",
            };
    }

    /// <summary>Creates a destination and sends its confirmation message; <paramref name="baseUrl"/> is where this server's API is reached (for the enableUrl).</summary>
    public Result<TopicRuleDestination> Create(string confirmationUrl, string baseUrl)
    {
        if (!Uri.TryCreate(confirmationUrl, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || confirmationUrl.Contains("${", StringComparison.Ordinal))
        {
            return new TrellisError.InvalidRequest($"confirmationUrl '{confirmationUrl}' must be an absolute http or https URL without substitution templates.");
        }

        string token;
        TopicRuleDestination created;
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (Read(connection, "confirmation_url", confirmationUrl) is { } existing)
            {
                return new TrellisError.AlreadyExists($"A topic rule destination for {confirmationUrl} already exists: {existing.Arn} ({existing.Status}).", null, existing.Arn);
            }

            var arn = _arn("ruledestination/http/" + Guid.NewGuid().ToString());
            var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
            token = NewToken();
            using var insert = Command(connection,
                "INSERT INTO topic_rule_destinations(arn, confirmation_url, status, status_reason, token_hash, created_ms, updated_ms) VALUES ($a, $u, $s, NULL, $h, $t, $t)",
                ("$a", arn), ("$u", confirmationUrl), ("$s", InProgress), ("$h", Hash(token)), ("$t", now));
            insert.ExecuteNonQuery();
            Reload(connection);
            created = Read(connection, "arn", arn)!;
        }

        _ = SendConfirmationAsync(created, token, baseUrl);
        return created;
    }

    /// <summary>Creates a destination for <paramref name="confirmationUrl"/> unless one exists (rules name their destinations implicitly, as on AWS).</summary>
    public void EnsureExists(string confirmationUrl, string baseUrl)
    {
        if (!Volatile.Read(ref _all).Any(d => d.ConfirmationUrl == confirmationUrl))
        {
            Create(confirmationUrl, baseUrl);
        }
    }

    public Result<TopicRuleDestination> Get(string arn)
    {
        using var connection = _db.Open();
        return Read(connection, "arn", arn) is { } destination ? destination : NotFound(arn);
    }

    /// <summary>Destinations in ARN order, a page at a time.</summary>
    public (List<TopicRuleDestination> Destinations, string? NextToken) List(string? nextToken, int? maxResults)
    {
        var size = Math.Clamp(maxResults ?? 1000, 1, 1000);
        var page = Volatile.Read(ref _all).Where(d => nextToken is null || string.CompareOrdinal(d.Arn, nextToken) > 0).Take(size + 1).ToList();
        string? next = null;
        if (page.Count > size)
        {
            page.RemoveAt(size);
            next = page[^1].Arn;
        }

        return (page, next);
    }

    /// <summary>
    /// ENABLED (only once its owner has confirmed it: a new destination is enabled by that confirmation),
    /// DISABLED, or IN_PROGRESS, which sends a new confirmation message with a new token.
    /// </summary>
    public TrellisError? Update(string arn, string? status, string baseUrl)
    {
        if (status is not (Enabled or Disabled or InProgress))
        {
            return new TrellisError.InvalidRequest($"status must be ENABLED, DISABLED or IN_PROGRESS (got '{status}').");
        }

        string? token = null;
        TopicRuleDestination updated;
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (Read(connection, "arn", arn) is not { } destination)
            {
                return NotFound(arn);
            }

            // A destination holds a token until its owner confirms it: one disabled before that was never confirmed.
            if (status == Enabled && AwaitsConfirmation(connection, arn))
            {
                return new TrellisError.InvalidRequest(
                    $"The topic rule destination {arn} ({destination.Status}) was never confirmed: it is enabled by its owner's confirmation (the enableUrl or ConfirmTopicRuleDestination), not by UpdateTopicRuleDestination. Set IN_PROGRESS to send a new confirmation message.");
            }

            if (status == InProgress)
            {
                token = NewToken();
            }

            using var update = Command(connection,
                "UPDATE topic_rule_destinations SET status = $s, status_reason = NULL, token_hash = CASE WHEN $h IS NULL THEN token_hash ELSE $h END, updated_ms = $t WHERE arn = $a",
                ("$a", arn), ("$s", status), ("$h", token is null ? null : Hash(token)), ("$t", _time.GetUtcNow().ToUnixTimeMilliseconds()));
            update.ExecuteNonQuery();
            Reload(connection);
            updated = Read(connection, "arn", arn)!;
        }

        if (token is not null)
        {
            _ = SendConfirmationAsync(updated, token, baseUrl);
        }

        return null;
    }

    public TrellisError? Delete(string arn)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            using var delete = Command(connection, "DELETE FROM topic_rule_destinations WHERE arn = $a", ("$a", arn));
            if (delete.ExecuteNonQuery() == 0)
            {
                return NotFound(arn);
            }

            Reload(connection);
            return null;
        }
    }

    /// <summary>The owner's answer to a confirmation message: the destination it names becomes ENABLED.</summary>
    public TrellisError? Confirm(string token)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            using var update = Command(connection,
                "UPDATE topic_rule_destinations SET status = $s, status_reason = NULL, token_hash = NULL, updated_ms = $t WHERE token_hash = $h AND status IN ($p, $e)",
                ("$s", Enabled), ("$h", Hash(token)), ("$p", InProgress), ("$e", Error), ("$t", _time.GetUtcNow().ToUnixTimeMilliseconds()));
            if (update.ExecuteNonQuery() == 0)
            {
                return new TrellisError.InvalidRequest("This confirmation token does not belong to a topic rule destination awaiting confirmation (it was used already, replaced by a newer confirmation, or never issued).");
            }

            Reload(connection);
            return null;
        }
    }

    /// <summary>
    /// POSTs AWS's confirmation message to the destination. When it cannot be delivered the
    /// destination goes to ERROR with the reason (a new confirmation is sent by setting IN_PROGRESS).
    /// </summary>
    private async Task SendConfirmationAsync(TopicRuleDestination destination, string token, string baseUrl)
    {
        var message = new JsonObject
        {
            ["arn"] = destination.Arn,
            ["confirmationToken"] = token,
            ["enableUrl"] = $"{baseUrl.TrimEnd('/')}/confirmdestination/{Uri.EscapeDataString(token)}",
            ["messageType"] = "DestinationConfirmation",
        };
        string? failure;
        try
        {
            // A body of known length, sent with Content-Length: some receivers refuse chunked requests.
            using var content = new StringContent(message.ToJsonString(), System.Text.Encoding.UTF8, "application/json");
            using var response = await _http.PostAsync(destination.ConfirmationUrl, content);
            failure = response.IsSuccessStatusCode ? null : $"the confirmation message to {destination.ConfirmationUrl} was answered with HTTP {(int)response.StatusCode}";
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            failure = $"the confirmation message could not be sent to {destination.ConfirmationUrl}: {e.Message}";
        }

        if (failure is null)
        {
            return;
        }

        LogConfirmationFailed(_logger, destination.Arn, failure);
        MarkFailed(destination, token, failure);
    }

    /// <summary>ERROR with the reason, unless a newer confirmation (or the owner) has moved the destination on meanwhile.</summary>
    private void MarkFailed(TopicRuleDestination destination, string token, string failure)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            using var update = Command(connection,
                "UPDATE topic_rule_destinations SET status = $e, status_reason = $r, updated_ms = $t WHERE arn = $a AND status = $p AND token_hash = $h",
                ("$e", Error), ("$r", failure), ("$a", destination.Arn), ("$p", InProgress), ("$h", Hash(token)), ("$t", _time.GetUtcNow().ToUnixTimeMilliseconds()));
            update.ExecuteNonQuery();
            Reload(connection);
        }
    }

    private void Reload(SqliteConnection? connection = null)
    {
        var owned = connection is null ? _db.Open() : null;
        try
        {
            using var command = Command(connection ?? owned!, $"SELECT {Columns} FROM topic_rule_destinations ORDER BY arn");
            using var reader = command.ExecuteReader();
            var all = new List<TopicRuleDestination>();
            while (reader.Read())
            {
                all.Add(Map(reader));
            }

            Volatile.Write(ref _all, [.. all]);
        }
        finally
        {
            owned?.Dispose();
        }
    }

    private const string Columns = "arn, confirmation_url, status, status_reason, created_ms, updated_ms";

    private static TopicRuleDestination? Read(SqliteConnection connection, string column, string value)
    {
        using var command = Command(connection, $"SELECT {Columns} FROM topic_rule_destinations WHERE {column} = $v", ("$v", value));
        using var reader = command.ExecuteReader();
        return reader.Read() ? Map(reader) : null;
    }

    private static bool AwaitsConfirmation(SqliteConnection connection, string arn)
    {
        using var command = Command(connection, "SELECT token_hash IS NOT NULL FROM topic_rule_destinations WHERE arn = $a", ("$a", arn));
        return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) != 0;
    }

    private static TopicRuleDestination Map(SqliteDataReader reader) => new(
        reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3), reader.GetInt64(4), reader.GetInt64(5));

    private static TrellisError.NotFound NotFound(string arn) => new($"The topic rule destination {arn} does not exist.");

    private static string NewToken() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    private static string Hash(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    [LoggerMessage(EventId = 6010, Level = LogLevel.Warning, Message = "Topic rule destination {Arn}: {Failure}. It is now ERROR; once the endpoint is reachable, send a new confirmation with UpdateTopicRuleDestination status IN_PROGRESS.")]
    private static partial void LogConfirmationFailed(ILogger logger, string arn, string failure);
}
