using System.Text;
using Microsoft.Data.Sqlite;
using Trellis.Security.Pki;
using Trellis.Security.Policies;
using Trellis.Storage;

namespace Trellis.Registry;

/// <summary>
/// Things, certificates, policies and their attachments, in SQLite. Keeps the default version of
/// every policy and every policy attachment in memory so connection policies compile without I/O.
/// </summary>
public sealed partial class RegistryService
{
    private readonly SqliteDatabase _db;
    private readonly CertificateAuthority _ca;
    private readonly TimeProvider _time;
    private readonly Lock _writeLock = new();
    private readonly Dictionary<string, PolicyDocument> _policies = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<string>> _targetPolicies = new(StringComparer.Ordinal);
    private long _generation = 1;

    private readonly Trellis.Security.SecretBox? _secrets;

    /// <summary>The registry; <paramref name="secrets"/> seals the device tokens that are also DTLS pre-shared keys (without it none can be created).</summary>
    public RegistryService(SqliteDatabase db, CertificateAuthority ca, RegistryOptions options, TimeProvider time, Trellis.Security.SecretBox? secrets = null)
    {
        _secrets = secrets;
        _db = db;
        _ca = ca;
        Options = options;
        _time = time;
        LoadPolicyIndex();
    }

    public RegistryOptions Options { get; }

    /// <summary>Raised after a certificate's status changed (id, new status).</summary>
    public event Action<string, string>? CertificateStatusChanged;

    /// <summary>Raised after a thing was deleted (its name).</summary>
    public event Action<string>? ThingDeleted;

    /// <summary>Raised after a thing joined (true) or left (false) a thing group (the thing's name).</summary>
    public event Action<string, bool>? ThingGroupMembershipChanged;

    /// <summary>
    /// Raised after anything the fleet index shows of a thing changed: created, updated, deleted,
    /// or its group memberships (the thing's name). Raised under the registry's write lock: handlers
    /// only take note.
    /// </summary>
    public event Action<string>? ThingChanged;

    /// <summary>Moves on whenever anything that affects a connection's policies changes.</summary>
    public long PolicyGeneration => Volatile.Read(ref _generation);

    private long NowMs => _time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>The default-version documents of the policies attached to any of <paramref name="targets"/>.</summary>
    public List<PolicyDocument> PoliciesFor(IEnumerable<string> targets)
    {
        lock (_writeLock)
        {
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var target in targets)
            {
                if (_targetPolicies.TryGetValue(target, out var attached))
                {
                    names.UnionWith(attached);
                }
            }

            return names.Where(_policies.ContainsKey).Select(n => _policies[n]).ToList();
        }
    }

    private void Changed() => Interlocked.Increment(ref _generation);

    private void LoadPolicyIndex()
    {
        using var connection = _db.Open();
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT p.name, v.document FROM policies p JOIN policy_versions v ON v.policy_name = p.name AND v.version = p.default_version";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                if (PolicyDocument.TryParse(reader.GetString(1), out var document, out _))
                {
                    _policies[reader.GetString(0)] = document!.Named(reader.GetString(0));
                }
            }
        }

        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT policy_name, target FROM policy_targets";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                AttachInIndex(reader.GetString(0), reader.GetString(1));
            }
        }
    }

    private void AttachInIndex(string policy, string target)
    {
        if (!_targetPolicies.TryGetValue(target, out var set))
        {
            _targetPolicies[target] = set = new HashSet<string>(StringComparer.Ordinal);
        }

        set.Add(policy);
    }

    private static string EncodeToken(string key) => Convert.ToBase64String(Encoding.UTF8.GetBytes(key));

    private static string? DecodeToken(string? token)
    {
        if (string.IsNullOrEmpty(token))
        {
            return null;
        }

        try
        {
            return Encoding.UTF8.GetString(Convert.FromBase64String(token));
        }
        catch (FormatException)
        {
            return "\uFFFF"; // an unreadable token yields an empty page rather than the first one again
        }
    }

    /// <summary>
    /// Turns up to <paramref name="size"/> + 1 rows into a page: the extra row only says there is
    /// more, and the last returned row's key becomes the next token.
    /// </summary>
    private static Page<T> ToPage<T>(List<T> rows, int size, Func<T, string> key)
    {
        string? next = null;
        if (rows.Count > size)
        {
            rows.RemoveAt(size);
            next = EncodeToken(key(rows[^1]));
        }

        return new Page<T>(rows, next);
    }

    /// <summary>One page of an in-memory, ordinally sorted list of keys.</summary>
    private static Page<string> PageOfKeys(IEnumerable<string> sortedKeys, string? token, int? requested)
    {
        var after = DecodeToken(token);
        var size = PageSize(requested);
        return ToPage(sortedKeys.Where(k => after is null || string.CompareOrdinal(k, after) > 0).Take(size + 1).ToList(), size, k => k);
    }

    /// <summary>Every row of a query, mapped.</summary>
    private static List<T> ReadAll<T>(SqliteCommand command, Func<SqliteDataReader, T> map)
    {
        using var reader = command.ExecuteReader();
        var rows = new List<T>();
        while (reader.Read())
        {
            rows.Add(map(reader));
        }

        return rows;
    }

    private static int PageSize(int? requested, int max = 250) => Math.Clamp(requested ?? 50, 1, max);
}
