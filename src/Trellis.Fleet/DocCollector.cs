using Lucene.Net.Index;
using Lucene.Net.Search;

namespace Trellis.Fleet;

/// <summary>Visits every matching document, segment by segment, without scoring: <paramref name="segment"/> gives the visitor for each segment (null skips it).</summary>
internal sealed class DocCollector(Func<AtomicReaderContext, Action<int>?> segment) : ICollector
{
    private Action<int>? _current;

    public bool AcceptsDocsOutOfOrder => true;

    public void SetScorer(Scorer scorer)
    {
    }

    public void SetNextReader(AtomicReaderContext context) => _current = segment(context);

    public void Collect(int doc) => _current?.Invoke(doc);
}
