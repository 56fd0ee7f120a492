using System.Collections.Concurrent;
using System.Diagnostics;
using Lucene.Net.Index;
using Lucene.Net.Search;
using Lucene.Net.Store;
using Lucene.Net.Util;
using Microsoft.Extensions.Logging;
using Trellis.Core.Errors;
using Trellis.Registry;
using Trellis.Shadows;

namespace Trellis.Fleet;

/// <summary>
/// The fleet index (AWS's <c>AWS_Things</c>): one Lucene document per thing with its registry
/// entry, its indexed shadows and its connectivity, following the stores within a fraction of a
/// second. The registry, the shadow service and connectivity only note which thing changed; one
/// indexer thread re-reads what changed, updates the documents in batches and refreshes the
/// searcher at most every <see cref="RefreshInterval"/>. The index lives in <c>index/</c> in the
/// data folder and is rebuilt from the stores at start-up and when the configuration changes, so
/// it can never disagree with them after a crash.
/// </summary>
public sealed partial class FleetIndex : IDisposable
{
    public const string ThingIndexName = "AWS_Things";
    private const string ConfigurationName = ThingIndexName;

    /// <summary>
    /// How long a change may wait for the next searcher refresh. Each refresh writes a small
    /// segment and applies the batch's deletes (a fixed cost, about a third of the indexer's time at
    /// 5 000 updates a second): 100 ms keeps freshness well inside a second.
    /// </summary>
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromMilliseconds(100);

    private readonly RegistryService _registry;
    private readonly ShadowStore _shadowStore;
    private readonly ThingConnectivity _connectivity;
    private readonly string _path;
    private readonly ILogger _logger;
    private readonly System.Threading.Lock _pendingLock = new();
    private Dictionary<string, PendingChange> _pending = new(StringComparer.Ordinal);
    private readonly AutoResetEvent _wake = new(false);
    private readonly Thread _indexer;
    private readonly CancellationTokenSource _stopping = new();
    private int _rebuildWanted; // 1: the indexer thread rebuilds before its next batch

    // What each indexed thing's document was built from: the indexer's source for the next update of
    // that thing and the search's source for the documents it returns (the index stores no fields).
    private readonly ConcurrentDictionary<string, ThingDocument> _documents = new(StringComparer.Ordinal);
    private readonly FieldPool _fields = new(); // the indexer thread's
    private FSDirectory? _directory;
    private IndexWriter? _writer;
    private SearcherManager? _searchers;
    private volatile string _status = "ACTIVE";
    private volatile IndexingConfiguration _configuration;
    private long _indexedChanges;

    public FleetIndex(RegistryService registry, ShadowService shadows, ShadowStore shadowStore, ThingConnectivity connectivity, string path, ILogger<FleetIndex> logger,
        System.Diagnostics.Metrics.IMeterFactory? meters = null)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(shadows);
        ArgumentNullException.ThrowIfNull(connectivity);
        Lag = new LagHistogram(meters);
        _registry = registry;
        _shadowStore = shadowStore;
        _connectivity = connectivity;
        _path = path;
        _logger = logger;
        _configuration = IndexingConfiguration.FromJson(registry.ReadIndexingConfiguration(ConfigurationName));
        registry.ThingChanged += name => Note(name, c => c.Registry = true);
        shadows.Changed += (key, document) =>
        {
            // The stored form was written before the commit: this only reads a cached string.
            var shadow = document.Exists ? new IndexedShadow(document.Version, document.ToStorageJson()) : null;
            Note(key.Thing, c => c.Shadows[key.Name] = (document.Version, shadow));
        };
        connectivity.Changed += record => Note(record.ThingName, c => c.Connectivity = true);
        if (_configuration.Enabled)
        {
            _status = "BUILDING";
            Volatile.Write(ref _rebuildWanted, 1);
            _wake.Set();
        }

        _indexer = new Thread(IndexLoop) { IsBackground = true, Name = "trellis-fleet-index" };
        _indexer.Start();
    }

    /// <summary>Raised on the indexer thread after a batch of things was indexed and is searchable (their names).</summary>
    public event Action<IReadOnlyCollection<string>>? Indexed;

    /// <summary>Raised on the indexer thread after the whole index was (re)built and is searchable.</summary>
    public event Action? Rebuilt;

    public IndexingConfiguration Configuration => _configuration;

    /// <summary>ACTIVE, BUILDING (first build) or REBUILDING (after a configuration change).</summary>
    public string Status => _status;

    /// <summary>From a change in a store to its thing's document being searchable, per change (seconds).</summary>
    public LagHistogram Lag { get; }

    /// <summary>Things whose changes wait for the indexer.</summary>
    public int Pending
    {
        get
        {
            lock (_pendingLock)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>Things in the index.</summary>
    public int Documents => _documents.Count;

    /// <summary>Thing changes indexed since start.</summary>
    public long IndexedChanges => Interlocked.Read(ref _indexedChanges);

    /// <summary>
    /// Changes what the index holds and rebuilds it. Turning thing indexing off while dynamic groups
    /// exist is refused (their membership follows the index).
    /// </summary>
    public TrellisError? Configure(IndexingConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        if (configuration.Validate() is { } invalid)
        {
            return invalid;
        }

        if (!configuration.Enabled && _registry.DynamicThingGroups() is { Count: > 0 } groups)
        {
            return new TrellisError.InvalidRequest($"Thing indexing cannot be turned off while dynamic thing groups exist ({string.Join(", ", groups.Take(5).Select(g => g.Name))}): delete them first.");
        }

        _registry.WriteIndexingConfiguration(ConfigurationName, configuration.ToJson());
        var previous = _configuration;
        _configuration = configuration;
        if (configuration.Enabled)
        {
            if (previous != configuration)
            {
                _status = previous.Enabled ? "REBUILDING" : "BUILDING";
                Volatile.Write(ref _rebuildWanted, 1);
                _wake.Set();
            }
        }
        else
        {
            _status = "ACTIVE";
        }

        return null;
    }

    /// <summary>Runs a search on the current searcher; refuses while the index is off or (re)building.</summary>
    public Result<T> WithSearcher<T>(string? indexName, Func<IndexSearcher, Result<T>> search)
    {
        ArgumentNullException.ThrowIfNull(search);
        if (CheckIndex(indexName) is { } refused)
        {
            return refused;
        }

        var searchers = _searchers;
        if (searchers is null || _status != "ACTIVE")
        {
            return new TrellisError.IndexNotReady($"Index {ThingIndexName} is {_status.ToLowerInvariant()}: retry in a moment.");
        }

        var searcher = searchers.Acquire();
        try
        {
            return search(searcher);
        }
        finally
        {
            searchers.Release(searcher);
        }
    }

    /// <summary>Refuses an index other than AWS_Things, and the thing index while thing indexing is off.</summary>
    public TrellisError? CheckIndex(string? indexName)
    {
        var name = indexName ?? ThingIndexName;
        if (name != ThingIndexName)
        {
            return new TrellisError.NotFound($"Index {name} does not exist: Trellis has the thing index, {ThingIndexName}.");
        }

        return _configuration.Enabled ? null : new TrellisError.NotFound($"Index {ThingIndexName} does not exist: thing indexing is OFF (turn it on with UpdateIndexingConfiguration).");
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _wake.Set();
        _indexer.Join(TimeSpan.FromSeconds(10));
        _searchers?.Dispose();
        _writer?.Dispose();
        _directory?.Dispose();
        _wake.Dispose();
        _stopping.Dispose();
    }

    private void Note(string thing, Action<PendingChange> change)
    {
        if (!_configuration.Enabled)
        {
            return;
        }

        lock (_pendingLock)
        {
            if (!_pending.TryGetValue(thing, out var pending))
            {
                _pending[thing] = pending = new PendingChange();
            }

            change(pending);
        }

        _wake.Set();
    }

    private void IndexLoop()
    {
        var lastRefresh = Stopwatch.StartNew();
        var unrefreshed = new Dictionary<string, long>(StringComparer.Ordinal); // thing → when its change was first noted
        var failures = 0;
        while (!_stopping.IsCancellationRequested)
        {
            var wait = unrefreshed.Count > 0 ? Math.Max(1, (int)(RefreshInterval - lastRefresh.Elapsed).TotalMilliseconds) : Timeout.Infinite;
            _wake.WaitOne(wait);
            if (_stopping.IsCancellationRequested)
            {
                break;
            }

            try
            {
                if (Interlocked.Exchange(ref _rebuildWanted, 0) == 1)
                {
                    Rebuild();
                    unrefreshed.Clear();
                    lastRefresh.Restart();
                    Rebuilt?.Invoke();
                    failures = 0;
                    continue;
                }

                Dictionary<string, PendingChange> batch;
                lock (_pendingLock)
                {
                    batch = _pending;
                    _pending = new Dictionary<string, PendingChange>(StringComparer.Ordinal);
                }

                if (batch.Count > 0 && _writer is not null && _configuration.Enabled)
                {
                    Apply(batch);
                    foreach (var (name, change) in batch)
                    {
                        unrefreshed.TryAdd(name, change.NotedAt);
                    }
                }

                if (unrefreshed.Count > 0 && lastRefresh.Elapsed >= RefreshInterval)
                {
                    _searchers!.MaybeRefreshBlocking();
                    lastRefresh.Restart();
                    var searchable = Stopwatch.GetTimestamp();
                    foreach (var noted in unrefreshed.Values)
                    {
                        Lag.Record(Stopwatch.GetElapsedTime(noted, searchable).TotalSeconds);
                    }

                    var done = unrefreshed.Keys.ToList();
                    unrefreshed.Clear();
                    Indexed?.Invoke(done);
                }
            }
            catch (Exception e) when (!_stopping.IsCancellationRequested)
            {
                // Whatever failed (a full disk, a document Lucene refuses, a store's error), the
                // broker keeps serving and what failed to apply is not lost: a rebuild reads
                // everything from the stores again, after a pause that doubles while it keeps failing.
                failures++;
                var pause = TimeSpan.FromSeconds(Math.Min(60, 1 << Math.Min(failures - 1, 6)));
                Log.IndexFailed(_logger, e.GetType().Name, e.Message, pause.TotalSeconds, e);
                _stopping.Token.WaitHandle.WaitOne(pause);
                Volatile.Write(ref _rebuildWanted, 1);
                _wake.Set();
                continue;
            }
            catch (Exception) when (_stopping.IsCancellationRequested)
            {
                break; // the writer was closed under a long rebuild: the server is stopping
            }

            failures = 0;
        }
    }

    /// <summary>Builds the index from the stores: the registry page by page, the shadows in one ordered scan beside it.</summary>
    private void Rebuild()
    {
        var clock = Stopwatch.StartNew();
        lock (_pendingLock)
        {
            _pending.Clear(); // what the scan reads is at least as new as any change noted before it
        }

        var configuration = _configuration;
        EnsureWriter();
        _writer!.DeleteAll();
        _documents.Clear();
        var count = 0;
        using var shadows = (configuration.Shadows ? _shadowStore.All() : []).GetEnumerator();
        var hasShadow = shadows.MoveNext();
        foreach (var (thing, groups) in _registry.AllThingsWithGroups())
        {
            var document = new ThingDocument { Thing = thing, Groups = groups, Connectivity = ConnectivityOf(thing.Name, configuration) };
            while (hasShadow && string.CompareOrdinal(shadows.Current.Key.Thing, thing.Name) < 0)
            {
                hasShadow = shadows.MoveNext();
            }

            while (hasShadow && shadows.Current.Key.Thing == thing.Name)
            {
                var (key, shadow) = shadows.Current;
                if (configuration.Indexes(key.Name))
                {
                    document.Shadows[key.Name] = new IndexedShadow(shadow.Version, shadow.ToStorageJson());
                }

                hasShadow = shadows.MoveNext();
            }

            var fields = document.ToLucene(_fields);
            _writer.AddDocument(fields);
            _fields.Return(fields);
            _documents[thing.Name] = document;
            count++;
        }

        _writer.Commit();
        _searchers!.MaybeRefreshBlocking();
        _status = "ACTIVE";
        Log.Rebuilt(_logger, count, clock.ElapsedMilliseconds);
    }

    private void EnsureWriter()
    {
        if (_writer is not null)
        {
            return;
        }

        System.IO.Directory.CreateDirectory(_path);
        _directory = FSDirectory.Open(_path);
        // Lucene's default merge policy and scheduler. Tried and not kept: 20 segments per tier with
        // one merge thread (the writer stalled behind the merges: freshness went from 0.3 s to 10 s).
        var config = new IndexWriterConfig(LuceneVersion.LUCENE_48, null)
        {
            OpenMode = OpenMode.CREATE,
            RAMBufferSizeMB = 32,
        };
        _writer = new IndexWriter(_directory, config);
        _searchers = new SearcherManager(_writer, true, null);
    }

    /// <summary>
    /// Updates the documents of the things in a batch from what changed. The parts come from the
    /// in-memory copy of each indexed thing (a Lucene read per update cost ~85 KB of allocations
    /// and most of the indexer's time): the registry is read again only when it changed.
    /// </summary>
    private void Apply(Dictionary<string, PendingChange> batch)
    {
        var configuration = _configuration;
        foreach (var (name, change) in batch)
        {
            var known = _documents.GetValueOrDefault(name);
            ThingRecord thing;
            IReadOnlyList<string> groups;
            Dictionary<string, IndexedShadow> shadows;
            if (known is not null && !change.Registry)
            {
                (thing, groups) = (known.Thing, known.Groups);
            }
            else if (_registry.ThingWithGroups(name) is { } fresh)
            {
                (thing, groups) = (fresh.Thing, fresh.Groups);
            }
            else
            {
                _writer!.DeleteDocuments(new Term(ThingDocument.IdField, name));
                _documents.TryRemove(name, out _);
                continue;
            }

            shadows = known is not null ? new Dictionary<string, IndexedShadow>(known.Shadows, StringComparer.Ordinal) : LoadShadows(name, configuration);
            foreach (var (shadowName, (version, shadow)) in change.Shadows)
            {
                if (!configuration.Indexes(shadowName) || (shadows.TryGetValue(shadowName, out var indexed) && indexed.Version > version))
                {
                    continue;
                }

                if (shadow is null)
                {
                    shadows.Remove(shadowName);
                }
                else
                {
                    shadows[shadowName] = shadow;
                }
            }

            var updated = new ThingDocument { Thing = thing, Groups = groups, Shadows = shadows, Connectivity = ConnectivityOf(name, configuration) };
            var fields = updated.ToLucene(_fields);
            _writer!.UpdateDocument(new Term(ThingDocument.IdField, name), fields);
            _fields.Return(fields);
            _documents[name] = updated;
            Interlocked.Increment(ref _indexedChanges);
        }
    }

    /// <summary>A thing's indexed parts, with its connectivity now.</summary>
    private ThingDocument? Found(string name) =>
        _documents.TryGetValue(name, out var document) ? new ThingDocument { Thing = document.Thing, Groups = document.Groups, Shadows = document.Shadows, Connectivity = ConnectivityOf(name, _configuration) } : null;

    private ConnectivityRecord? ConnectivityOf(string thing, IndexingConfiguration configuration) =>
        configuration.Connectivity ? _connectivity.Get(thing) ?? new ConnectivityRecord(thing, false, 0, null) : null;

    private Dictionary<string, IndexedShadow> LoadShadows(string thing, IndexingConfiguration configuration)
    {
        var shadows = new Dictionary<string, IndexedShadow>(StringComparer.Ordinal);
        if (!configuration.Shadows)
        {
            return shadows;
        }

        foreach (var name in configuration.NamedShadows ? configuration.NamedShadowNames.Prepend(string.Empty) : [string.Empty])
        {
            if (_shadowStore.Load(new ShadowKey(thing, name)) is { Exists: true } shadow)
            {
                shadows[name] = new IndexedShadow(shadow.Version, shadow.ToStorageJson());
            }
        }

        return shadows;
    }

    /// <summary>What changed of one thing since it was last indexed.</summary>
    private sealed class PendingChange
    {
        /// <summary>When the first of these changes was noted (Stopwatch timestamp).</summary>
        public long NotedAt { get; } = Stopwatch.GetTimestamp();

        public bool Registry { get; set; }

        public bool Connectivity { get; set; }

        /// <summary>The newest committed document of each changed shadow (null: deleted).</summary>
        public Dictionary<string, (long Version, IndexedShadow? Shadow)> Shadows { get; } = new(StringComparer.Ordinal);
    }

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Information, Message = "Fleet index built: {Things} things in {Milliseconds} ms")]
        public static partial void Rebuilt(ILogger logger, int things, long milliseconds);

        [LoggerMessage(Level = LogLevel.Error, Message = "Fleet index update failed ({Kind}: {Reason}); rebuilding it from the stores in {Seconds} s. Searches answer from the last good state meanwhile; if this repeats, check the index folder's disk and permissions.")]
        public static partial void IndexFailed(ILogger logger, string kind, string reason, double seconds, Exception exception);
    }
}
