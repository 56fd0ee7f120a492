using System.Xml.Linq;

namespace Trellis.UnitTests.Fleet;

/// <summary>
/// The Native AOT build keeps, of Lucene.Net and Confluent.Kafka, only the types they look up by
/// reflection (src/Trellis.Cli/aot-roots.xml). A type missing there works in every test of the
/// JIT build and crashes the AOT server, so the list is checked against the libraries in use:
/// an update that adds such a type fails here until the list names it.
/// </summary>
public sealed class AotRootsTests
{
    private static readonly XDocument Descriptor = XDocument.Load(Path.Combine(RepositoryRoot(), "src", "Trellis.Cli", "aot-roots.xml"));

    [Fact]
    public void Every_lucene_type_found_by_name_or_by_scanning_is_kept()
    {
        // Attributes are made from their interface's name (ICharTermAttribute → CharTermAttribute);
        // codecs and their formats are found by scanning the assembly's types.
        var lucene = typeof(Lucene.Net.Util.Attribute).Assembly.GetTypes()
            .Where(t => !t.IsAbstract && (Is<Lucene.Net.Util.Attribute>(t) || Is<Lucene.Net.Codecs.Codec>(t) || Is<Lucene.Net.Codecs.PostingsFormat>(t) || Is<Lucene.Net.Codecs.DocValuesFormat>(t)))
            .Select(t => t.FullName!.Replace('+', '/'))
            .Order(StringComparer.Ordinal).ToArray();
        Assert.Contains("Lucene.Net.Analysis.NumericTokenStream/NumericTermAttribute", lucene);
        Assert.Contains("Lucene.Net.Codecs.Lucene46.Lucene46Codec", lucene);
        Assert.Equal(lucene, Kept("Lucene.Net"));
    }

    [Fact]
    public void Every_class_confluent_kafka_binds_librdkafka_through_is_kept()
    {
        var native = typeof(Confluent.Kafka.ProducerConfig).Assembly.GetTypes()
            .Where(t => t.Namespace == "Confluent.Kafka.Impl.NativeMethods" && t.Name.StartsWith("NativeMethods", StringComparison.Ordinal))
            .Select(t => t.FullName!).Order(StringComparer.Ordinal).ToArray();
        Assert.NotEmpty(native);
        Assert.Equal(native, Kept("Confluent.Kafka"));
    }

    private static bool Is<T>(Type type) => typeof(T).IsAssignableFrom(type) && type != typeof(T);

    private static string[] Kept(string assembly) =>
    [
        .. Descriptor.Root!.Elements("assembly").Single(a => (string?)a.Attribute("fullname") == assembly)
            .Elements("type").Select(t => (string)t.Attribute("fullname")!).Order(StringComparer.Ordinal),
    ];

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Trellis.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Trellis.slnx not found above " + AppContext.BaseDirectory);
    }
}
