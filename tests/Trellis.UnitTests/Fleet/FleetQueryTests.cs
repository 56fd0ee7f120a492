using Lucene.Net.Index;
using Lucene.Net.Search;
using Lucene.Net.Store;
using Lucene.Net.Util;
using Trellis.Core.Errors;
using Trellis.Fleet;
using Trellis.Registry;

namespace Trellis.UnitTests.Fleet;

/// <summary>AWS's query syntax against a small in-memory index of thing documents built the way the fleet index builds them.</summary>
public sealed class FleetQueryTests : IDisposable
{
    private readonly RAMDirectory _directory = new();
    private readonly DirectoryReader _reader;
    private readonly IndexSearcher _searcher;

    public FleetQueryTests()
    {
        using (var writer = new IndexWriter(_directory, new IndexWriterConfig(LuceneVersion.LUCENE_48, null)))
        {
            Add(writer, "tv-oled", new() { ["model"] = "OLED", ["size"] = "55" }, ["living"], """{"reported":{"power":"on","temp":41.5,"tags":["wall","4k"]}}""");
            Add(writer, "tv-plasma", new() { ["model"] = "plasma", ["size"] = "42" }, [], """{"reported":{"power":"off","temp":35},"desired":{"power":"on"}}""");
            Add(writer, "radio-1", new() { ["serial"] = "abce" }, ["living", "kitchen"], null);
            Add(writer, "sensor:x_1", new() { ["serial"] = "abcg", ["size"] = "7" }, [], """{"reported":{"note":"a b"}}""");
        }

        _reader = DirectoryReader.Open(_directory);
        _searcher = new IndexSearcher(_reader);
    }

    [Theory]
    [InlineData("thingName:tv*", "tv-oled tv-plasma")]
    [InlineData("thingName:TV-OLED", "tv-oled")]
    [InlineData("thingName:*sma", "tv-plasma")]
    [InlineData("thingName:tv-?led", "tv-oled")]
    [InlineData("thingName:(tv* AND -tv-plasma)", "tv-oled")]
    [InlineData("thingName:(tv* -tv-plasma)", "tv-oled")]
    [InlineData("thingName:tv* NOT attributes.model:plasma", "tv-oled")]
    [InlineData("NOT thingName:tv*", "radio-1 sensor:x_1")]
    [InlineData("-thingName:tv* AND attributes.size:*", "sensor:x_1")]
    [InlineData("attributes.size>40", "tv-oled tv-plasma")]
    [InlineData("attributes.size>=42 AND attributes.size<=55", "tv-oled tv-plasma")]
    [InlineData("attributes.size:[7 TO 42}", "sensor:x_1")]
    [InlineData("attributes.size:{7 TO *]", "tv-oled tv-plasma")]
    [InlineData("attributes.size:7.0", "sensor:x_1")]
    [InlineData("attributes.serial:[\"abcd\" TO \"abcf\"]", "radio-1")]
    [InlineData("attributes.serial:[abcd TO abcf]", "radio-1")]
    [InlineData("shadow.reported.temp:[35 TO 40]", "tv-plasma")]
    [InlineData("shadow.reported.temp>-1 OR thingGroupNames:kitchen", "radio-1 tv-oled tv-plasma")]
    [InlineData("shadow.hasDelta:true", "tv-plasma")]
    [InlineData("shadow.delta.power:on", "tv-plasma")]
    [InlineData("shadow.reported.tags:4K", "tv-oled")]
    [InlineData("shadow.reported.note:\"a b\"", "sensor:x_1")]
    [InlineData("thingGroupNames:living AND (attributes.model:oled OR attributes.serial:abce)", "radio-1 tv-oled")]
    [InlineData("thingName:sensor\\:x_1", "sensor:x_1")]
    [InlineData("living", "radio-1 tv-oled")]
    [InlineData("*", "radio-1 sensor:x_1 tv-oled tv-plasma")]
    [InlineData("attributes.nothing:*", "")]
    public void A_query_finds_exactly_the_things_it_names(string query, string expected)
    {
        var parsed = FleetQuery.Parse(query, out _);
        Assert.True(parsed.IsSuccess, parsed.Error?.Message);
        var names = MultiDocValues.GetSortedValues(_reader, ThingDocument.IdField);
        var hits = _searcher.Search(parsed.Value!, 100).ScoreDocs.Select(h =>
        {
            var name = new BytesRef();
            names.Get(h.Doc, name);
            return name.Utf8ToString();
        }).Order(StringComparer.Ordinal);
        Assert.Equal(expected, string.Join(' ', hits));
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("thingName:", "position 11")]
    [InlineData("thingName: tv", "position 12")]
    [InlineData("attributes.size:[1 TO", "position 22")]
    [InlineData("attributes.size:[1 5]", "position 20")]
    [InlineData("attributes.size:[9 TO 1]", "low bound")]
    [InlineData("(thingName:a OR thingName:b", "position 28")]
    [InlineData("thingName:a)", "position 12")]
    [InlineData("thingName:a AND", "position 16")]
    [InlineData("OR thingName:a", "position 1")]
    [InlineData("thingName:a@b", "'@'")]
    [InlineData("\"open", "not closed")]
    [InlineData("attributes.x>", "position 14")]
    [InlineData("thingName:(a attributes.x:b)", "inside the value group")]
    [InlineData("_all:x", "not a field name")]
    public void A_query_that_does_not_parse_is_refused_with_where(string query, string where)
    {
        var parsed = FleetQuery.Parse(query, out _);
        var error = Assert.IsType<TrellisError.InvalidQuery>(parsed.Error);
        Assert.Contains(where, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_fields_a_query_names_are_reported()
    {
        FleetQuery.Parse("thingGroupNames:a OR (attributes.b>1 AND NOT shadow.reported.c:*)", out var fields);
        Assert.Equal(["attributes.b", "shadow.reported.c", "thingGroupNames"], fields.Order(StringComparer.Ordinal));
    }

    public void Dispose()
    {
        _reader.Dispose();
        _directory.Dispose();
    }

    private static void Add(IndexWriter writer, string name, Dictionary<string, string> attributes, string[] groups, string? state)
    {
        var document = new ThingDocument
        {
            Thing = new ThingRecord(name, Guid.NewGuid().ToString(), "arn:aws:iot:us-east-1:0:thing/" + name, null, attributes, 1),
            Groups = groups,
        };
        if (state is not null)
        {
            document.Shadows[string.Empty] = new IndexedShadow(1, "{\"state\":" + state + ",\"metadata\":{},\"timestamp\":1}");
        }

        writer.AddDocument(document.ToLucene());
    }
}
