using Trellis.Fleet;

namespace Trellis.Api.Aws.Iot;

/// <summary>Fleet metrics: aggregations over a fleet-index query, computed every period into the time-series store.</summary>
public sealed partial class IotOperations
{
    public Task<CreateFleetMetricResponse> CreateFleetMetricAsync(CreateFleetMetricRequest request, CancellationToken cancellationToken)
    {
        var metric = Ok(fleetMetrics.Create(new FleetMetric(
            request.MetricName, request.QueryString, request.AggregationType.Name, request.AggregationType.Values ?? [], request.Period ?? 0, request.AggregationField,
            request.Description, request.QueryVersion, request.IndexName ?? FleetIndex.ThingIndexName, request.Unit, 0, 0, 0)));
        return DoneAsync(new CreateFleetMetricResponse { MetricName = metric.Name, MetricArn = MetricArn(metric.Name) });
    }

    public Task<DescribeFleetMetricResponse> DescribeFleetMetricAsync(DescribeFleetMetricRequest request, CancellationToken cancellationToken)
    {
        var metric = Ok(fleetMetrics.Describe(request.MetricName));
        return DoneAsync(new DescribeFleetMetricResponse
        {
            MetricName = metric.Name,
            MetricArn = MetricArn(metric.Name),
            QueryString = metric.QueryString,
            AggregationType = new AggregationType { Name = metric.AggregationType, Values = metric.Values },
            Period = metric.Period,
            AggregationField = metric.AggregationField,
            Description = metric.Description,
            QueryVersion = metric.QueryVersion,
            IndexName = metric.IndexName,
            Unit = metric.Unit,
            Version = metric.Version,
            CreationDate = DateTimeOffset.FromUnixTimeMilliseconds(metric.CreatedMs),
            LastModifiedDate = DateTimeOffset.FromUnixTimeMilliseconds(metric.UpdatedMs),
        });
    }

    public Task<AwsEmpty> UpdateFleetMetricAsync(UpdateFleetMetricRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(fleetMetrics.Update(request.MetricName, m => m with
        {
            QueryString = request.QueryString ?? m.QueryString,
            AggregationType = request.AggregationType?.Name ?? m.AggregationType,
            Values = request.AggregationType is { } type ? type.Values ?? [] : m.Values,
            Period = request.Period ?? m.Period,
            AggregationField = request.AggregationField ?? m.AggregationField,
            Description = request.Description ?? m.Description,
            QueryVersion = request.QueryVersion ?? m.QueryVersion,
            IndexName = request.IndexName,
            Unit = request.Unit ?? m.Unit,
        }, request.ExpectedVersion));

    public Task<AwsEmpty> DeleteFleetMetricAsync(DeleteFleetMetricRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(fleetMetrics.Delete(request.MetricName, request.ExpectedVersion));

    public Task<ListFleetMetricsResponse> ListFleetMetricsAsync(ListFleetMetricsRequest request, CancellationToken cancellationToken)
    {
        var page = fleetMetrics.List(request.NextToken, request.MaxResults);
        return DoneAsync(new ListFleetMetricsResponse
        {
            FleetMetrics = [.. page.Items.Select(m => new FleetMetricNameAndArn { MetricName = m.Name, MetricArn = MetricArn(m.Name) })],
            NextToken = page.NextToken,
        });
    }

    private string MetricArn(string name) => registry.Options.Arn("fleetmetric/" + name);
}
