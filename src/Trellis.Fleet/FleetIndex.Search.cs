using System.Text;
using Lucene.Net.Index;
using Lucene.Net.Search;
using Lucene.Net.Util;
using Trellis.Core.Errors;

namespace Trellis.Fleet;

/// <summary>One page of things found, in name order.</summary>
public sealed record SearchPage(IReadOnlyList<ThingDocument> Things, string? NextToken);

/// <summary>AWS's statistics over a field: count only for a field without numbers.</summary>
public sealed record FieldStatistics(long Count, double? Average, double? Sum, double? Minimum, double? Maximum, double? SumOfSquares, double? Variance, double? StdDeviation);

/// <summary>One bucket of a terms aggregation.</summary>
public sealed record Bucket(string Key, long Count);

public sealed partial class FleetIndex
{
    /// <summary>AWS: at most 100 things per page.</summary>
    public const int MaxPageSize = 100;

    /// <summary>AWS's default percentiles.</summary>
    public static readonly IReadOnlyList<double> DefaultPercents = [1, 5, 25, 50, 75, 95, 99];

    private static readonly Sort ByName = new(new SortField(ThingDocument.IdField, SortFieldType.STRING));

    /// <summary>Things that match a query, in name order, a page at a time (the token is the last name, encoded).</summary>
    public Result<SearchPage> Search(string? indexName, string query, string? nextToken, int? maxResults)
    {
        var parsed = Parse(query);
        if (!parsed.IsSuccess)
        {
            return parsed.Error!;
        }

        var size = Math.Clamp(maxResults ?? MaxPageSize, 1, MaxPageSize);
        string? after = null;
        if (!string.IsNullOrEmpty(nextToken))
        {
            try
            {
                after = Encoding.UTF8.GetString(Convert.FromBase64String(nextToken));
            }
            catch (FormatException)
            {
                return new TrellisError.InvalidRequest("The nextToken is not one this index gave out.");
            }
        }

        return WithSearcher(indexName, searcher =>
        {
            var filter = after is null ? null : TermRangeFilter.NewStringRange(ThingDocument.IdField, after, null, false, false);
            var hits = searcher.Search(parsed.Value!, filter, size + 1, ByName);
            var names = hits.ScoreDocs.Take(size).Select(hit => NameOf(searcher, hit.Doc)).ToList();
            var things = names.Select(Found).OfType<ThingDocument>().ToList();
            var next = hits.ScoreDocs.Length > size ? Convert.ToBase64String(Encoding.UTF8.GetBytes(names[^1])) : null;
            return (Result<SearchPage>)(new SearchPage(things, next));
        });
    }

    /// <summary>
    /// The names of the things among <paramref name="among"/> (all when null) that match a parsed
    /// query; null while the index cannot answer (so that nobody mistakes "not ready" for "none").
    /// </summary>
    public HashSet<string>? Matching(Query query, IReadOnlyCollection<string>? among)
    {
        ArgumentNullException.ThrowIfNull(query);
        var found = new HashSet<string>(StringComparer.Ordinal);
        var result = WithSearcher<bool>(null, searcher =>
        {
            // A name filter of at most 1 000 terms per search: BooleanQuery's clause limit is 1 024.
            foreach (var chunk in among is null ? [(string[]?)null] : among.Chunk(1000).Cast<string[]?>())
            {
                var filtered = query;
                if (chunk is not null)
                {
                    var names = new BooleanQuery();
                    foreach (var name in chunk)
                    {
                        names.Add(new TermQuery(new Term(ThingDocument.IdField, name)), Occur.SHOULD);
                    }

                    filtered = new BooleanQuery { { query, Occur.MUST }, { names, Occur.MUST } };
                }

                searcher.Search(filtered, new DocCollector(context =>
                {
                    var ids = context.AtomicReader.GetSortedDocValues(ThingDocument.IdField);
                    var scratch = new BytesRef();
                    return doc =>
                    {
                        ids.Get(doc, scratch);
                        found.Add(scratch.Utf8ToString());
                    };
                }));
            }

            return true;
        });
        return result.IsSuccess ? found : null;
    }

    /// <summary>AWS's GetStatistics: over the numbers of a field in the things that match; count only when the field holds no numbers (or none is given).</summary>
    public Result<FieldStatistics> Statistics(string? indexName, string query, string? field)
    {
        var parsed = Parse(query);
        if (!parsed.IsSuccess)
        {
            return parsed.Error!;
        }

        return WithSearcher(indexName, searcher =>
        {
            if (field is null)
            {
                return (Result<FieldStatistics>)(new FieldStatistics(Count(searcher, parsed.Value!), null, null, null, null, null, null, null));
            }

            var values = Numbers(searcher, parsed.Value!, field);
            if (values.Count == 0)
            {
                var withField = new BooleanQuery { { parsed.Value!, Occur.MUST }, { new WildcardQuery(new Term(field, "*")), Occur.MUST } };
                return (Result<FieldStatistics>)(new FieldStatistics(Count(searcher, withField), null, null, null, null, null, null, null));
            }

            double sum = 0, squares = 0, min = double.MaxValue, max = double.MinValue;
            foreach (var value in values)
            {
                sum += value;
                squares += value * value;
                min = Math.Min(min, value);
                max = Math.Max(max, value);
            }

            var average = sum / values.Count;
            var variance = Math.Max(0, (squares / values.Count) - (average * average));
            return (Result<FieldStatistics>)(new FieldStatistics(values.Count, average, sum, min, max, squares, variance, Math.Sqrt(variance)));
        });
    }

    /// <summary>AWS's GetCardinality: how many distinct values a field has in the things that match (the things themselves without a field).</summary>
    public Result<long> Cardinality(string? indexName, string query, string? field)
    {
        var parsed = Parse(query);
        if (!parsed.IsSuccess)
        {
            return parsed.Error!;
        }

        return WithSearcher(indexName, searcher => field is null
            ? (Result<long>)Count(searcher, parsed.Value!)
            : (Result<long>)DistinctValues(searcher, parsed.Value!, field));
    }

    /// <summary>AWS's GetPercentiles over a numeric field (linear interpolation between ranks).</summary>
    public Result<List<(double Percent, double Value)>> Percentiles(string? indexName, string query, string field, IReadOnlyList<double>? percents)
    {
        var parsed = Parse(query);
        if (!parsed.IsSuccess)
        {
            return parsed.Error!;
        }

        var wanted = percents is { Count: > 0 } ? percents : DefaultPercents;
        if (wanted.FirstOrDefault(p => p is < 0 or > 100 || double.IsNaN(p)) is var bad && (bad is < 0 or > 100 || double.IsNaN(bad)))
        {
            return new TrellisError.InvalidRequest($"Percent {bad} is outside 0-100.");
        }

        return WithSearcher(indexName, searcher =>
        {
            var values = Numbers(searcher, parsed.Value!, field);
            if (values.Count == 0)
            {
                return new TrellisError.InvalidAggregation($"Field {field} holds no numbers in the things that match: percentiles need a numeric field.");
            }

            values.Sort();
            return (Result<List<(double Percent, double Value)>>)wanted.Select(p => (p, Interpolate(values, p))).ToList();
        });
    }

    /// <summary>AWS's GetBucketsAggregation (terms): the most frequent values of a field, with their counts, and how many things matched.</summary>
    public Result<(long Total, IReadOnlyList<Bucket> Buckets)> Buckets(string? indexName, string query, string field, int? maxBuckets)
    {
        var parsed = Parse(query);
        if (!parsed.IsSuccess)
        {
            return parsed.Error!;
        }

        var size = Math.Clamp(maxBuckets ?? 10, 1, 10_000);
        return WithSearcher(indexName, searcher =>
        {
            var counts = Terms(searcher, parsed.Value!, field);
            var total = Count(searcher, parsed.Value!);
            IReadOnlyList<Bucket> buckets = [.. counts.OrderByDescending(c => c.Value).ThenBy(c => c.Key, StringComparer.Ordinal).Take(size).Select(c => new Bucket(c.Key, c.Value))];
            return (Result<(long, IReadOnlyList<Bucket>)>)((total, buckets));
        });
    }

    /// <summary>Parses an AWS query; the fields it names are not checked (an unknown field matches nothing, as in AWS).</summary>
    public static Result<Query> Parse(string query) => FleetQuery.Parse(query, out _);

    /// <summary>A document's thing name, from the sorted doc values of its id.</summary>
    private static string NameOf(IndexSearcher searcher, int doc)
    {
        var leaves = searcher.IndexReader.Leaves;
        var leaf = leaves[ReaderUtil.SubIndex(doc, leaves)];
        var scratch = new BytesRef();
        leaf.AtomicReader.GetSortedDocValues(ThingDocument.IdField).Get(doc - leaf.DocBase, scratch);
        return scratch.Utf8ToString();
    }

    private static long Count(IndexSearcher searcher, Query query)
    {
        var collector = new TotalHitCountCollector();
        searcher.Search(query, collector);
        return collector.TotalHits;
    }

    /// <summary>The first numeric value of a field in each matching thing.</summary>
    private static List<double> Numbers(IndexSearcher searcher, Query query, string field)
    {
        var values = new List<double>();
        var numeric = FleetQuery.NumericField(field);
        searcher.Search(query, new DocCollector(context =>
        {
            var docValues = context.AtomicReader.GetNumericDocValues(numeric);
            var present = context.AtomicReader.GetDocsWithField(numeric);
            if (docValues is null || present is null)
            {
                return null;
            }

            return doc =>
            {
                if (present.Get(doc))
                {
                    values.Add(BitConverter.Int64BitsToDouble(docValues.Get(doc)));
                }
            };
        }));
        return values;
    }

    /// <summary>Each distinct value of a field in the matching things, with how many things hold it.</summary>
    private static Dictionary<string, long> Terms(IndexSearcher searcher, Query query, string field)
    {
        var valuesField = FleetQuery.ValuesField(field);
        var segments = new List<(SortedSetDocValues Values, long[] PerOrdinal)>();
        searcher.Search(query, new DocCollector(context =>
        {
            var docValues = context.AtomicReader.GetSortedSetDocValues(valuesField);
            if (docValues is null)
            {
                return null;
            }

            var perOrdinal = new long[docValues.ValueCount];
            segments.Add((docValues, perOrdinal));
            var last = -1L;
            return doc =>
            {
                // Ordinals come in ascending order per document: count each value once per thing.
                docValues.SetDocument(doc);
                last = -1;
                long ordinal;
                while ((ordinal = docValues.NextOrd()) != SortedSetDocValues.NO_MORE_ORDS)
                {
                    if (ordinal != last)
                    {
                        perOrdinal[ordinal]++;
                        last = ordinal;
                    }
                }
            };
        }));

        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        var scratch = new BytesRef();
        foreach (var (values, perOrdinal) in segments)
        {
            for (var ordinal = 0; ordinal < perOrdinal.Length; ordinal++)
            {
                if (perOrdinal[ordinal] > 0)
                {
                    values.LookupOrd(ordinal, scratch);
                    var key = scratch.Utf8ToString();
                    counts[key] = counts.GetValueOrDefault(key) + perOrdinal[ordinal];
                }
            }
        }

        return counts;
    }

    /// <summary>
    /// How many distinct values a field has in the matching things: per segment, which ordinals
    /// occur; across segments, a 64-bit hash of each value's bytes (no string per value, which made
    /// this the slowest aggregation over 100 000 distinct serials). Two distinct values whose hashes
    /// collide count once: about one chance in 10^9 at a million values.
    /// </summary>
    private static long DistinctValues(IndexSearcher searcher, Query query, string field)
    {
        var valuesField = FleetQuery.ValuesField(field);
        var segments = new List<(SortedSetDocValues Values, System.Collections.BitArray Seen)>();
        searcher.Search(query, new DocCollector(context =>
        {
            var docValues = context.AtomicReader.GetSortedSetDocValues(valuesField);
            if (docValues is null)
            {
                return null;
            }

            var seen = new System.Collections.BitArray((int)docValues.ValueCount);
            segments.Add((docValues, seen));
            return doc =>
            {
                docValues.SetDocument(doc);
                long ordinal;
                while ((ordinal = docValues.NextOrd()) != SortedSetDocValues.NO_MORE_ORDS)
                {
                    seen[(int)ordinal] = true;
                }
            };
        }));

        if (segments.Count == 1)
        {
            return segments[0].Seen.Cast<bool>().LongCount(b => b);
        }

        var hashes = new HashSet<ulong>();
        var scratch = new BytesRef();
        foreach (var (values, seen) in segments)
        {
            for (var ordinal = 0; ordinal < seen.Length; ordinal++)
            {
                if (seen[ordinal])
                {
                    values.LookupOrd(ordinal, scratch);
                    hashes.Add(Fnv1a(scratch.Bytes.AsSpan(scratch.Offset, scratch.Length)));
                }
            }
        }

        return hashes.Count;
    }

    private static ulong Fnv1a(ReadOnlySpan<byte> bytes)
    {
        var hash = 14695981039346656037UL;
        foreach (var b in bytes)
        {
            hash = (hash ^ b) * 1099511628211UL;
        }

        return hash;
    }

    private static double Interpolate(List<double> sorted, double percent)
    {
        var rank = percent / 100 * (sorted.Count - 1);
        var low = (int)Math.Floor(rank);
        var high = (int)Math.Ceiling(rank);
        return sorted[low] + ((sorted[high] - sorted[low]) * (rank - low));
    }
}
