namespace Trellis.IntegrationTests.TestKit;

/// <summary>The shared server for the integration tests.</summary>
[CollectionDefinition(Name)]
public sealed class TrellisServerGroup : ICollectionFixture<TrellisHost>
{
    public const string Name = "trellis";
}
