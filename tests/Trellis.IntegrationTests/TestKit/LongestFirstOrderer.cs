using Xunit.Sdk;
using Xunit.v3;

[assembly: TestCollectionOrderer(typeof(Trellis.IntegrationTests.TestKit.LongestFirstOrderer))]

namespace Trellis.IntegrationTests.TestKit;

/// <summary>
/// Collections run two at a time (xunit.runner.json); the suite's wall time is the busier lane's,
/// so the longest collections start first and the short ones fill in around them. PackageTests goes
/// last: it waits for the package build that scripts/test.sh started in the background, and a
/// waiting test would hold one of the two lanes. The rest follow in a fixed order, by their ids.
/// </summary>
public sealed class LongestFirstOrderer : ITestCollectionOrderer
{
    // Measured seconds per collection on the 2-core machine (xunit's XML report), longest first.
    private static readonly string[] Longest =
    [
        TrellisServerGroup.Name,
        "Api.DocsTests",
        "Jobs.JobsCrashRecoveryTests",
        "Gateway.GatewayStoreAndForwardTests",
        "Api.DefenderTests",
        "Api.FleetIndexTests",
        "Api.QuickstartTests",
    ];

    private const string Last = "Api.PackageTests";

    public IReadOnlyCollection<TTestCollection> OrderTestCollections<TTestCollection>(IReadOnlyCollection<TTestCollection> testCollections)
        where TTestCollection : ITestCollection
    {
        return [.. testCollections.OrderBy(c => Rank(c)).ThenBy(c => c.UniqueID, StringComparer.Ordinal)];
    }

    private static int Rank(ITestCollection collection)
    {
        var name = collection.TestCollectionDisplayName;
        if (Matches(name, Last))
        {
            return int.MaxValue;
        }

        var index = Array.FindIndex(Longest, n => Matches(name, n));
        return index < 0 ? Longest.Length : index;
    }

    // A named collection's display name is its name; a class's own collection is
    // "Test collection for Trellis.IntegrationTests.<Folder>.<Class> (id: …)".
    private static bool Matches(string displayName, string name) =>
        displayName == name || displayName.Contains($"Trellis.IntegrationTests.{name} ", StringComparison.Ordinal);
}
