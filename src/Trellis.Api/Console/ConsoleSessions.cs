using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace Trellis.Api.Console;

/// <summary>One signed-in console user: the API key it acts as, and the token its changes must carry.</summary>
public sealed record ConsoleSession(string Id, string AccessKeyId, string CsrfToken, DateTimeOffset Created, DateTimeOffset LastUsed);

/// <summary>
/// Console sign-ins, in memory: a session is a random 256-bit id in an HttpOnly, SameSite=Strict
/// cookie, bound to the API key that signed in, and acts with exactly that key's role. It ends at
/// sign-out, after <see cref="IdleTimeout"/> unused or <see cref="MaxAge"/> in all, when the key is
/// deleted or rotated, and when the server restarts.
/// </summary>
public sealed class ConsoleSessions(TimeProvider time)
{
    public const string Cookie = "trellis_session";

    public static readonly TimeSpan IdleTimeout = TimeSpan.FromHours(1);

    public static readonly TimeSpan MaxAge = TimeSpan.FromHours(12);

    private readonly ConcurrentDictionary<string, ConsoleSession> _sessions = new(StringComparer.Ordinal);

    /// <summary>Per session that holds a long-lived connection (the console's MQTT socket): cancelled when the session ends.</summary>
    private readonly ConcurrentDictionary<string, CancellationTokenSource> _ended = new(StringComparer.Ordinal);

    public ConsoleSession Create(string accessKeyId)
    {
        Sweep();
        var now = time.GetUtcNow();
        var session = new ConsoleSession(Token(), accessKeyId, Token(), now, now);
        _sessions[session.Id] = session;
        return session;
    }

    /// <summary>The live session with this id (its last use moved to now), or null.</summary>
    public ConsoleSession? Find(string? id)
    {
        if (string.IsNullOrEmpty(id) || !_sessions.TryGetValue(id, out var session))
        {
            return null;
        }

        var now = time.GetUtcNow();
        if (now - session.LastUsed > IdleTimeout || now - session.Created > MaxAge)
        {
            Remove(id);
            return null;
        }

        var used = session with { LastUsed = now };
        _sessions[id] = used;
        return used;
    }

    /// <summary>
    /// Cancelled when the session ends: signed out, its key deleted or rotated, or its
    /// <see cref="MaxAge"/> reached (a connection that outlives requests does not extend it).
    /// </summary>
    public CancellationToken Ended(ConsoleSession session)
    {
        var source = _ended.GetOrAdd(session.Id, _ => new CancellationTokenSource(Remaining(session), time));
        if (!_sessions.ContainsKey(session.Id))
        {
            source.Cancel(); // ended meanwhile
        }

        return source.Token;
    }

    public void Remove(string id)
    {
        _sessions.TryRemove(id, out _);
        if (_ended.TryRemove(id, out var ended))
        {
            ended.Cancel();
            ended.Dispose();
        }
    }

    /// <summary>Ends every session of a key (deleted or rotated).</summary>
    public void RemoveKey(string accessKeyId)
    {
        foreach (var session in _sessions.Values.Where(s => s.AccessKeyId == accessKeyId))
        {
            Remove(session.Id);
        }
    }

    private TimeSpan Remaining(ConsoleSession session)
    {
        var left = session.Created + MaxAge - time.GetUtcNow();
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }

    private void Sweep()
    {
        var now = time.GetUtcNow();
        foreach (var session in _sessions.Values.Where(s => now - s.LastUsed > IdleTimeout || now - s.Created > MaxAge))
        {
            Remove(session.Id);
        }
    }

    private static string Token() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
