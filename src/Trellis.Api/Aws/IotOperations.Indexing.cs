using Trellis.Fleet;

namespace Trellis.Api.Aws.Iot;

/// <summary>Fleet indexing: its configuration, search, aggregations, and dynamic thing groups.</summary>
public sealed partial class IotOperations
{
    public Task<UpdateIndexingConfigurationResponse> UpdateIndexingConfigurationAsync(UpdateIndexingConfigurationRequest request, CancellationToken cancellationToken)
    {
        var current = index.Configuration;
        var things = request.ThingIndexingConfiguration;
        var configuration = things is null ? current : new IndexingConfiguration(
            things.ThingIndexingMode,
            things.ThingConnectivityIndexingMode ?? "OFF",
            things.NamedShadowIndexingMode ?? "OFF",
            things.DeviceDefenderIndexingMode ?? "OFF",
            things.Filter?.NamedShadowNames ?? [],
            [.. (things.CustomFields ?? []).Select(f => new IndexField(f.Name ?? string.Empty, f.Type))],
            current.ThingGroupIndexingMode);
        if (request.ThingGroupIndexingConfiguration is { } groups)
        {
            configuration = configuration with { ThingGroupIndexingMode = groups.ThingGroupIndexingMode };
        }

        return EmptyAsync<UpdateIndexingConfigurationResponse>(index.Configure(configuration));
    }

    public Task<GetIndexingConfigurationResponse> GetIndexingConfigurationAsync(GetIndexingConfigurationRequest request, CancellationToken cancellationToken)
    {
        var configuration = index.Configuration;
        return DoneAsync(new GetIndexingConfigurationResponse
        {
            ThingIndexingConfiguration = new ThingIndexingConfiguration
            {
                ThingIndexingMode = configuration.ThingIndexingMode,
                ThingConnectivityIndexingMode = configuration.ThingConnectivityIndexingMode,
                NamedShadowIndexingMode = configuration.NamedShadowIndexingMode,
                DeviceDefenderIndexingMode = configuration.DeviceDefenderIndexingMode,
                ManagedFields = [.. configuration.ManagedFields().Select(ToField)],
                CustomFields = [.. configuration.CustomFields.Select(ToField)],
                Filter = configuration.NamedShadowNames.Count > 0 ? new IndexingFilter { NamedShadowNames = configuration.NamedShadowNames } : null,
            },
            ThingGroupIndexingConfiguration = new ThingGroupIndexingConfiguration { ThingGroupIndexingMode = configuration.ThingGroupIndexingMode },
        });
    }

    public Task<DescribeIndexResponse> DescribeIndexAsync(DescribeIndexRequest request, CancellationToken cancellationToken)
    {
        Ok(index.CheckIndex(request.IndexName));
        var configuration = index.Configuration;
        var schema = configuration.Shadows ? "REGISTRY_AND_SHADOW" : "REGISTRY";
        if (configuration.Connectivity)
        {
            schema += "_AND_CONNECTIVITY_STATUS";
        }

        return DoneAsync(new DescribeIndexResponse { IndexName = FleetIndex.ThingIndexName, IndexStatus = index.Status, Schema = schema });
    }

    public Task<ListIndicesResponse> ListIndicesAsync(ListIndicesRequest request, CancellationToken cancellationToken) =>
        DoneAsync(new ListIndicesResponse { IndexNames = index.Configuration.Enabled ? [FleetIndex.ThingIndexName] : [] });

    public Task<SearchIndexResponse> SearchIndexAsync(SearchIndexRequest request, CancellationToken cancellationToken)
    {
        var page = Ok(index.Search(request.IndexName, request.QueryString, request.NextToken, request.MaxResults));
        return DoneAsync(new SearchIndexResponse
        {
            Things = [.. page.Things.Select(ToThingDocument)],
            ThingGroups = [],
            NextToken = page.NextToken,
        });
    }

    public Task<GetStatisticsResponse> GetStatisticsAsync(GetStatisticsRequest request, CancellationToken cancellationToken)
    {
        var statistics = Ok(index.Statistics(request.IndexName, request.QueryString, request.AggregationField));
        return DoneAsync(new GetStatisticsResponse
        {
            Statistics = new Statistics
            {
                Count = (int)Math.Min(int.MaxValue, statistics.Count),
                Average = statistics.Average,
                Sum = statistics.Sum,
                Minimum = statistics.Minimum,
                Maximum = statistics.Maximum,
                SumOfSquares = statistics.SumOfSquares,
                Variance = statistics.Variance,
                StdDeviation = statistics.StdDeviation,
            },
        });
    }

    public Task<GetCardinalityResponse> GetCardinalityAsync(GetCardinalityRequest request, CancellationToken cancellationToken) =>
        DoneAsync(new GetCardinalityResponse { Cardinality = (int)Math.Min(int.MaxValue, Ok(index.Cardinality(request.IndexName, request.QueryString, request.AggregationField))) });

    public Task<GetPercentilesResponse> GetPercentilesAsync(GetPercentilesRequest request, CancellationToken cancellationToken)
    {
        if (request.AggregationField is null)
        {
            throw new AwsErrorException(new TrellisError.InvalidAggregation("GetPercentiles needs an aggregationField that holds numbers."));
        }

        var percentiles = Ok(index.Percentiles(request.IndexName, request.QueryString, request.AggregationField, request.Percents));
        return DoneAsync(new GetPercentilesResponse { Percentiles = [.. percentiles.Select(p => new PercentPair { Percent = p.Percent, Value = p.Value })] });
    }

    public Task<GetBucketsAggregationResponse> GetBucketsAggregationAsync(GetBucketsAggregationRequest request, CancellationToken cancellationToken)
    {
        var (total, buckets) = Ok(index.Buckets(request.IndexName, request.QueryString, request.AggregationField, request.BucketsAggregationType.TermsAggregation?.MaxBuckets));
        return DoneAsync(new GetBucketsAggregationResponse
        {
            TotalCount = (int)Math.Min(int.MaxValue, total),
            Buckets = [.. buckets.Select(b => new Bucket { KeyValue = b.Key, Count = (int)Math.Min(int.MaxValue, b.Count) })],
        });
    }

    public Task<CreateDynamicThingGroupResponse> CreateDynamicThingGroupAsync(CreateDynamicThingGroupRequest request, CancellationToken cancellationToken)
    {
        var properties = request.ThingGroupProperties;
        var group = Ok(dynamicGroups.Create(request.ThingGroupName, properties?.ThingGroupDescription, GroupAttributes(properties), request.QueryString, request.QueryVersion, request.IndexName));
        return DoneAsync(new CreateDynamicThingGroupResponse
        {
            ThingGroupName = group.Name,
            ThingGroupArn = group.Arn,
            ThingGroupId = group.Id,
            IndexName = group.IndexName,
            QueryString = group.QueryString,
            QueryVersion = group.QueryVersion,
        });
    }

    public Task<UpdateDynamicThingGroupResponse> UpdateDynamicThingGroupAsync(UpdateDynamicThingGroupRequest request, CancellationToken cancellationToken)
    {
        var properties = request.ThingGroupProperties;
        var payload = properties.AttributePayload;
        var version = Ok(dynamicGroups.Update(request.ThingGroupName, properties.ThingGroupDescription, payload?.Attributes, payload?.Merge ?? false, request.ExpectedVersion, request.QueryString, request.QueryVersion, request.IndexName));
        return DoneAsync(new UpdateDynamicThingGroupResponse { Version = version });
    }

    public Task<DeleteDynamicThingGroupResponse> DeleteDynamicThingGroupAsync(DeleteDynamicThingGroupRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<DeleteDynamicThingGroupResponse>(dynamicGroups.Delete(request.ThingGroupName, request.ExpectedVersion));

    private static Field ToField(IndexField field) => new() { Name = field.Name, Type = field.Type };

    private static ThingDocument ToThingDocument(Fleet.ThingDocument document) => new()
    {
        ThingName = document.Thing.Name,
        ThingId = document.Thing.Id,
        ThingTypeName = document.Thing.TypeName,
        ThingGroupNames = document.Groups.Count > 0 ? document.Groups : null,
        Attributes = Map(document.Thing.Attributes),
        Shadow = document.ShadowJson(),
        Connectivity = document.Connectivity is { } c ? new ThingConnectivity { Connected = c.Connected, Timestamp = c.TimestampMs > 0 ? c.TimestampMs : null, DisconnectReason = c.DisconnectReason } : null,
    };
}
