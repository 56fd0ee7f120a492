using System.Text;
using System.Text.RegularExpressions;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>
/// Every shell block of README.md and docs/*.md, run as written, in order, on a fresh server with the
/// default ports (1883, 8883, 8083, 5683, 5684, 8080), from a folder laid out as the repository root
/// (<c>./trellis</c>, <c>data/</c>, <c>samples/</c>, <c>scripts/</c>). A doc runs after the README's
/// quick start, as a reader does. A block that cannot run here is preceded by
/// <c>&lt;!-- doc-test: skip REASON --&gt;</c>, and the reason must say where it is tested instead or why it
/// cannot run; the test fails when a reason is missing.
/// </summary>
public sealed partial class DocsTests
{
    private static readonly TimeSpan PerDocument = TimeSpan.FromMinutes(3);

    public static TheoryData<string> Documents()
    {
        var root = TrellisCli.RepositoryRoot();
        var data = new TheoryData<string>();
        foreach (var path in new[] { "README.md" }.Concat(Directory.GetFiles(Path.Combine(root, "docs"), "*.md").Select(p => "docs/" + Path.GetFileName(p)).Order(StringComparer.Ordinal)))
        {
            // TRELLIS_DOCS_ONLY=docs/a.md,docs/b.md runs those alone (while fixing a doc); unset, every doc runs.
            var only = Environment.GetEnvironmentVariable("TRELLIS_DOCS_ONLY");
            if (Blocks(File.ReadAllText(Path.Combine(root, path))).Any(b => b.Skip is null) && (string.IsNullOrEmpty(only) || only.Split(',').Contains(path)))
            {
                data.Add(path);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Documents))]
    public async Task Every_shell_block_runs_as_written_on_a_fresh_server(string document)
    {
        var ct = TestContext.Current.CancellationToken;
        var root = TrellisCli.RepositoryRoot();
        var blocks = Blocks(await File.ReadAllTextAsync(Path.Combine(root, document), ct));
        Assert.All(blocks.Where(b => b.Skip is not null), b => Assert.True(b.Skip!.Length >= 10, $"{document}:{b.Line}: a skipped block must say why (<!-- doc-test: skip REASON -->)"));

        await using var host = new DefaultPortsHost();
        await host.InitializeAsync();
        var work = Path.Combine(host.DataDirectory, "doc-work");
        Directory.CreateDirectory(work);
        File.CreateSymbolicLink(Path.Combine(work, "data"), host.DataDirectory);
        // As a clone's root: the command, and the samples and scripts the docs run.
        foreach (var entry in new[] { "trellis", "samples", "scripts", "docs" })
        {
            File.CreateSymbolicLink(Path.Combine(work, entry), Path.Combine(root, entry));
        }

        var script = new StringBuilder("set -eo pipefail\ncd \"$(dirname \"$0\")\"\n");
        if (document != "README.md")
        {
            // A reader comes to a doc after the README's quick start, in the same terminal.
            script.Append(QuickStart(await File.ReadAllTextAsync(Path.Combine(root, "README.md"), ct))).Append('\n');
        }

        foreach (var block in blocks.Where(b => b.Skip is null))
        {
            script.Append(CultureFormattable($"echo \"::doc-test:: {document}:{block.Line}\" >&2\n")).Append(block.Text).Append('\n');
        }

        var path = Path.Combine(work, "doc.sh");
        await File.WriteAllTextAsync(path, script.ToString(), ct);
        var result = await ExternalTool.RunAsync("bash", [path], PerDocument, new Dictionary<string, string> { ["HOME"] = work }, ct);
        var failedAt = result.Stderr.Split('\n').LastOrDefault(l => l.StartsWith("::doc-test::", StringComparison.Ordinal))?["::doc-test:: ".Length..];
        Assert.True(result.ExitCode == 0, $"{document}: the block at {failedAt} failed (exit {result.ExitCode}):\n{Tail(result.Output)}");
    }

    /// <summary>The README's quick start (between its markers) as shell lines.</summary>
    private static string QuickStart(string readme)
    {
        var begin = readme.IndexOf("<!-- quickstart:begin -->", StringComparison.Ordinal);
        var end = readme.IndexOf("<!-- quickstart:end -->", StringComparison.Ordinal);
        return string.Join('\n', readme[begin..end].Split('\n').Where(l => !l.StartsWith("```", StringComparison.Ordinal) && !l.StartsWith("<!--", StringComparison.Ordinal)));
    }

    private sealed record Block(int Line, string Text, string? Skip);

    /// <summary>The ```bash and ```sh blocks of a markdown text, each with the reason it is skipped, if it is.</summary>
    private static List<Block> Blocks(string markdown)
    {
        var lines = markdown.Replace("\r", string.Empty, StringComparison.Ordinal).Split('\n');
        var blocks = new List<Block>();
        for (var i = 0; i < lines.Length; i++)
        {
            var fence = Fence().Match(lines[i]);
            if (!fence.Success)
            {
                continue;
            }

            var indent = fence.Groups[1].Value.Length;
            var language = fence.Groups[2].Value;
            var start = i;
            var body = new List<string>();
            for (i++; i < lines.Length && !lines[i].TrimStart().StartsWith("```", StringComparison.Ordinal); i++)
            {
                body.Add(lines[i].Length >= indent ? lines[i][indent..] : lines[i].TrimStart());
            }

            if (language is not ("bash" or "sh"))
            {
                continue;
            }

            string? skip = null;
            for (var j = start - 1; j >= 0 && (lines[j].Trim().Length == 0 || lines[j].TrimStart().StartsWith("<!--", StringComparison.Ordinal)); j--)
            {
                if (SkipMarker().Match(lines[j]) is { Success: true } marker)
                {
                    skip = marker.Groups[1].Value.Trim();
                    break;
                }
            }

            blocks.Add(new Block(start + 1, string.Join('\n', body), skip));
        }

        return blocks;
    }

    private static string Tail(string output) => output.Length > 6000 ? "…" + output[^6000..] : output;

    private static string CultureFormattable(FormattableString text) => FormattableString.Invariant(text);

    [GeneratedRegex(@"^(\s*)```([a-z]*)\s*$")]
    private static partial Regex Fence();

    [GeneratedRegex(@"<!--\s*doc-test:\s*skip\b(.*?)-->")]
    private static partial Regex SkipMarker();

    /// <summary>A fresh server on the documented default ports, as `./trellis serve` starts it.</summary>
    private sealed class DefaultPortsHost : TrellisHost
    {
        protected override Trellis.Server.TrellisServerOptions Configure(Trellis.Server.TrellisServerOptions options) => new()
        {
            DataDirectory = options.DataDirectory,
            Mqtt = "127.0.0.1:1883",
            Mqtts = "127.0.0.1:8883",
            WebSocket = "127.0.0.1:8083",
            Coap = "127.0.0.1:5683",
            Coaps = "127.0.0.1:5684",
            Http = "127.0.0.1:8080",
            ConfigureBroker = options.ConfigureBroker,
        };
    }
}
