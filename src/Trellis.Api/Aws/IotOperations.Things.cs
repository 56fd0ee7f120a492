namespace Trellis.Api.Aws.Iot;

/// <summary>Things: CreateThing, DescribeThing, ListThings, UpdateThing, DeleteThing.</summary>
public sealed partial class IotOperations
{
    public Task<CreateThingResponse> CreateThingAsync(CreateThingRequest request, CancellationToken cancellationToken)
    {
        var attributes = request.AttributePayload?.Attributes;
        if (attributes?.FirstOrDefault(a => a.Value is null) is { Key: not null } missing)
        {
            throw new AwsErrorException(new TrellisError.InvalidRequest($"Attribute '{missing.Key}' must be a string."));
        }

        var thing = Ok(registry.CreateThing(request.ThingName, request.ThingTypeName, attributes?.ToDictionary(a => a.Key, a => a.Value!, StringComparer.Ordinal)));
        return DoneAsync(ThingView<CreateThingResponse>(thing));
    }

    /// <summary>Whether the thing is online now, since when, and why it last went (AWS: GetThingConnectivityData).</summary>
    public Task<GetThingConnectivityDataResponse> GetThingConnectivityDataAsync(GetThingConnectivityDataRequest request, CancellationToken cancellationToken)
    {
        if (!registry.ThingExists(request.ThingName))
        {
            throw new AwsErrorException(new TrellisError.NotFound($"Thing '{request.ThingName}' does not exist."));
        }

        var state = connectivity.Get(request.ThingName);
        return DoneAsync(new GetThingConnectivityDataResponse
        {
            ThingName = request.ThingName,
            Connected = state?.Connected ?? false,
            Timestamp = state is null ? null : Time(state.TimestampMs),
            DisconnectReason = state is null ? "NONE" : state.DisconnectReason,
        });
    }

    public Task<DescribeThingResponse> DescribeThingAsync(DescribeThingRequest request, CancellationToken cancellationToken)
    {
        var thing = Ok(registry.DescribeThing(request.ThingName));
        return DoneAsync(ThingView<DescribeThingResponse>(thing) with
        {
            DefaultClientId = thing.Name,
            ThingTypeName = thing.TypeName,
            Attributes = Map(thing.Attributes),
            Version = thing.Version,
        });
    }

    /// <summary>What CreateThing and DescribeThing both answer of a thing.</summary>
    private static T ThingView<T>(Trellis.Registry.ThingRecord thing)
        where T : IThingView, new() => new() { ThingName = thing.Name, ThingArn = thing.Arn, ThingId = thing.Id };

    public Task<ListThingsResponse> ListThingsAsync(ListThingsRequest request, CancellationToken cancellationToken)
    {
        var name = string.IsNullOrEmpty(request.AttributeName) ? null : request.AttributeName;
        var value = string.IsNullOrEmpty(request.AttributeValue) ? null : request.AttributeValue;
        if ((name is null) != (value is null))
        {
            throw new AwsErrorException(new TrellisError.InvalidRequest("attributeName and attributeValue must be given together."));
        }

        var page = registry.ListThings(request.NextToken, request.MaxResults, name, value, request.UsePrefixAttributeValue ?? false, request.ThingTypeName);
        return DoneAsync(new ListThingsResponse
        {
            Things = [.. page.Items.Select(t => new ThingAttribute { ThingName = t.Name, ThingArn = t.Arn, ThingTypeName = t.TypeName, Attributes = Map(t.Attributes), Version = t.Version })],
            NextToken = page.NextToken,
        });
    }

    public Task<UpdateThingResponse> UpdateThingAsync(UpdateThingRequest request, CancellationToken cancellationToken)
    {
        // AWS: attributePayload.merge defaults to false, which replaces all attributes.
        var payload = request.AttributePayload;
        Ok(registry.UpdateThing(request.ThingName, request.ThingTypeName, request.RemoveThingType ?? false, payload?.Attributes, payload?.Merge ?? false, request.ExpectedVersion));
        return DoneAsync(new UpdateThingResponse());
    }

    public Task<DeleteThingResponse> DeleteThingAsync(DeleteThingRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<DeleteThingResponse>(registry.DeleteThing(request.ThingName, request.ExpectedVersion));
}
