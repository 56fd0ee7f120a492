using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Trellis.Gateway.Local;

/// <summary>One leaf device the gateway serves: its thing name and the hash of its local password.</summary>
public sealed record Leaf(string Thing, byte[] Salt, byte[] Hash);

/// <summary>
/// The leaves a gateway serves (<c>leaves.json</c> in its data folder, mode 0600): each is a thing
/// of the upstream registry that connects to the gateway's local listener with its thing name as
/// client id and user name and a password made by <c>trellis gateway add-leaf</c>. Only a salted
/// SHA-256 of each password is kept (the passwords are 256-bit random, so a slow hash adds nothing).
/// </summary>
public sealed class LeafRegistry
{
    private readonly Dictionary<string, Leaf> _leaves;

    private LeafRegistry(Dictionary<string, Leaf> leaves) => _leaves = leaves;

    public IReadOnlyCollection<Leaf> Leaves => _leaves.Values;

    public static string PathIn(string dataDirectory) => Path.Combine(dataDirectory, "leaves.json");

    /// <summary>Reads the data folder's leaves (none when the file does not exist yet).</summary>
    public static LeafRegistry Load(string dataDirectory)
    {
        var path = PathIn(dataDirectory);
        var leaves = new Dictionary<string, Leaf>(StringComparer.Ordinal);
        if (!File.Exists(path))
        {
            return new LeafRegistry(leaves);
        }

        try
        {
            foreach (var node in JsonNode.Parse(File.ReadAllText(path))?["leaves"]?.AsArray() ?? [])
            {
                var thing = node!["thing"]!.GetValue<string>();
                leaves[thing] = new Leaf(thing, Convert.FromBase64String(node["salt"]!.GetValue<string>()), Convert.FromBase64String(node["hash"]!.GetValue<string>()));
            }
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or NullReferenceException or FormatException or InvalidOperationException)
        {
            throw new InvalidOperationException($"{path} is not a leaves file written by `trellis gateway add-leaf` ({e.Message}); remove it and add the leaves again.", e);
        }

        return new LeafRegistry(leaves);
    }

    /// <summary>Adds (or gives a new password to) a leaf; returns the password, which is not kept.</summary>
    public static string Add(string dataDirectory, string thing)
    {
        ArgumentException.ThrowIfNullOrEmpty(thing);
        if (thing.Contains('/', StringComparison.Ordinal) || thing.Contains('+', StringComparison.Ordinal) || thing.Contains('#', StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{thing}' is not a thing name: it may not contain '/', '+' or '#'.", nameof(thing));
        }

        GatewayFiles.CreatePrivateDirectory(dataDirectory);
        var registry = Load(dataDirectory);
        var password = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var salt = RandomNumberGenerator.GetBytes(16);
        registry._leaves[thing] = new Leaf(thing, salt, HashOf(salt, Encoding.UTF8.GetBytes(password)));
        var array = new JsonArray();
        foreach (var leaf in registry._leaves.Values.OrderBy(l => l.Thing, StringComparer.Ordinal))
        {
            array.Add((JsonNode)new JsonObject { ["thing"] = leaf.Thing, ["salt"] = Convert.ToBase64String(leaf.Salt), ["hash"] = Convert.ToBase64String(leaf.Hash) });
        }

        Trellis.Device.IdentityFiles.WritePrivate(PathIn(dataDirectory), new JsonObject { ["leaves"] = array }.ToJsonString() + "\n");
        return password;
    }

    public bool Contains(string thing) => _leaves.ContainsKey(thing);

    /// <summary>True when <paramref name="password"/> is the leaf's.</summary>
    public bool Verify(string thing, ReadOnlySpan<byte> password) =>
        _leaves.TryGetValue(thing, out var leaf) && CryptographicOperations.FixedTimeEquals(HashOf(leaf.Salt, password), leaf.Hash);

    private static byte[] HashOf(byte[] salt, ReadOnlySpan<byte> password)
    {
        var input = new byte[salt.Length + password.Length];
        salt.CopyTo(input, 0);
        password.CopyTo(input.AsSpan(salt.Length));
        return SHA256.HashData(input);
    }
}
