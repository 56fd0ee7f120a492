using System.Collections.Concurrent;
using Trellis.Broker.Protocol;

namespace Trellis.Broker.Internal;

/// <summary>
/// Topic-filter trie. Lookups are lock-free and allocation-free (span-keyed dictionary lookups,
/// copy-on-write subscriber arrays); changes take one writer lock.
/// </summary>
internal sealed class SubscriptionIndex
{
    private readonly Node _root = new();
    private readonly Lock _writeLock = new();
    private int _count;
    private int _dollarCount;

    public int Count => Volatile.Read(ref _count);

    /// <summary>Subscriptions whose filter starts with '$': only these can match server topics such as $aws/events/….</summary>
    public int DollarCount => Volatile.Read(ref _dollarCount);

    public void Add(Session session, TopicSubscription options, string? shareGroup, string filter)
    {
        lock (_writeLock)
        {
            var node = _root;
            foreach (var level in filter.Split('/'))
            {
                node = level switch
                {
                    "+" => node.Plus ??= new Node(),
                    "#" => node.Hash ??= new Node(),
                    _ => node.Children.GetOrAdd(level, static _ => new Node()),
                };
            }

            var subscriber = new Subscriber(session, options);
            if (shareGroup is null)
            {
                var existing = Array.FindIndex(node.Subscribers, s => s.Session == session);
                if (existing >= 0)
                {
                    var copy = (Subscriber[])node.Subscribers.Clone();
                    copy[existing] = subscriber;
                    node.Subscribers = copy;
                    return;
                }

                node.Subscribers = [.. node.Subscribers, subscriber];
            }
            else
            {
                var group = Array.Find(node.Groups, g => g.Name == shareGroup);
                if (group is null)
                {
                    group = new SharedGroup(shareGroup);
                    node.Groups = [.. node.Groups, group];
                }

                if (!group.Set(subscriber))
                {
                    return;
                }
            }

            _count++;
            if (filter.StartsWith('$'))
            {
                _dollarCount++;
            }
        }
    }

    public bool Remove(Session session, string? shareGroup, string filter)
    {
        lock (_writeLock)
        {
            var path = new List<(Node Parent, string Level)>();
            var node = _root;
            foreach (var level in filter.Split('/'))
            {
                var next = level switch
                {
                    "+" => node.Plus,
                    "#" => node.Hash,
                    _ => node.Children.TryGetValue(level, out var child) ? child : null,
                };
                if (next is null)
                {
                    return false;
                }

                path.Add((node, level));
                node = next;
            }

            bool removed;
            if (shareGroup is null)
            {
                var before = node.Subscribers.Length;
                node.Subscribers = Array.FindAll(node.Subscribers, s => s.Session != session);
                removed = node.Subscribers.Length != before;
            }
            else
            {
                var group = Array.Find(node.Groups, g => g.Name == shareGroup);
                removed = group?.Remove(session) ?? false;
                if (group is not null && group.IsEmpty)
                {
                    node.Groups = Array.FindAll(node.Groups, g => g != group);
                }
            }

            if (removed)
            {
                _count--;
                if (filter.StartsWith('$'))
                {
                    _dollarCount--;
                }

                Prune(path, node);
            }

            return removed;
        }
    }

    /// <summary>Calls <paramref name="visit"/> for every subscription matching <paramref name="topic"/>.</summary>
    public void Match<TState>(string topic, ref TState state, MatchVisitor<TState> visit)
        where TState : allows ref struct
    {
        var dollar = topic.Length > 0 && topic[0] == '$';
        Walk(_root, topic.AsSpan(), dollar, ref state, visit);
    }

    private static void Walk<TState>(Node node, ReadOnlySpan<char> rest, bool firstLevelDollar, ref TState state, MatchVisitor<TState> visit)
        where TState : allows ref struct
    {
        // MQTT §4.7.2: wildcards at the first level never match topics that start with '$'.
        if (!firstLevelDollar && node.Hash is { } hash)
        {
            Visit(hash, ref state, visit);
        }

        var slash = rest.IndexOf('/');
        var level = slash < 0 ? rest : rest[..slash];
        var last = slash < 0;
        var tail = last ? default : rest[(slash + 1)..];

        if (node.Children.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(level, out var child))
        {
            Step(child, last, tail, ref state, visit);
        }

        if (!firstLevelDollar && node.Plus is { } plus)
        {
            Step(plus, last, tail, ref state, visit);
        }
    }

    private static void Step<TState>(Node child, bool last, ReadOnlySpan<char> tail, ref TState state, MatchVisitor<TState> visit)
        where TState : allows ref struct
    {
        if (last)
        {
            Visit(child, ref state, visit);

            // "a/#" also matches "a" (§4.7.1.2).
            if (child.Hash is { } hash)
            {
                Visit(hash, ref state, visit);
            }
        }
        else
        {
            Walk(child, tail, false, ref state, visit);
        }
    }

    private static void Visit<TState>(Node node, ref TState state, MatchVisitor<TState> visit)
        where TState : allows ref struct
    {
        foreach (var subscriber in node.Subscribers)
        {
            visit(ref state, subscriber);
        }

        foreach (var group in node.Groups)
        {
            if (group.Pick() is { } chosen)
            {
                visit(ref state, chosen);
            }
        }
    }

    private static void Prune(List<(Node Parent, string Level)> path, Node leaf)
    {
        var node = leaf;
        for (var i = path.Count - 1; i >= 0; i--)
        {
            if (!node.IsEmpty)
            {
                return;
            }

            var (parent, level) = path[i];
            switch (level)
            {
                case "+": parent.Plus = null; break;
                case "#": parent.Hash = null; break;
                default: parent.Children.TryRemove(level, out _); break;
            }

            node = parent;
        }
    }

    internal delegate void MatchVisitor<TState>(ref TState state, Subscriber subscriber)
        where TState : allows ref struct;

    private sealed class Node
    {
        public ConcurrentDictionary<string, Node> Children { get; } = new(StringComparer.Ordinal);

        public Node? Plus { get; set; }

        public Node? Hash { get; set; }

        public Subscriber[] Subscribers { get; set; } = [];

        public SharedGroup[] Groups { get; set; } = [];

        public bool IsEmpty => Children.IsEmpty && Plus is null && Hash is null && Subscribers.Length == 0 && Groups.Length == 0;
    }

    /// <summary>A shared subscription group: each message goes to one member, round-robin, preferring connected ones.</summary>
    private sealed class SharedGroup(string name)
    {
        private Subscriber[] _members = [];
        private uint _next;

        public string Name { get; } = name;

        public bool IsEmpty => _members.Length == 0;

        public bool Set(Subscriber subscriber)
        {
            var index = Array.FindIndex(_members, m => m.Session == subscriber.Session);
            if (index >= 0)
            {
                var copy = (Subscriber[])_members.Clone();
                copy[index] = subscriber;
                _members = copy;
                return false;
            }

            _members = [.. _members, subscriber];
            return true;
        }

        public bool Remove(Session session)
        {
            var before = _members.Length;
            _members = Array.FindAll(_members, m => m.Session != session);
            return _members.Length != before;
        }

        public Subscriber? Pick()
        {
            var members = _members;
            if (members.Length == 0)
            {
                return null;
            }

            var start = Interlocked.Increment(ref _next);
            for (var i = 0; i < members.Length; i++)
            {
                var candidate = members[(int)((start + (uint)i) % (uint)members.Length)];
                if (candidate.Session.Connection is not null)
                {
                    return candidate;
                }
            }

            return members[(int)(start % (uint)members.Length)];
        }
    }
}
