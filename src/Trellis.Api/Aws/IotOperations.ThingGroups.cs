using Trellis.Registry;

namespace Trellis.Api.Aws.Iot;

/// <summary>Thing types and thing groups (hierarchies up to 7 levels, a thing in at most 10 groups).</summary>
public sealed partial class IotOperations
{
    public Task<CreateThingTypeResponse> CreateThingTypeAsync(CreateThingTypeRequest request, CancellationToken cancellationToken)
    {
        var properties = request.ThingTypeProperties;
        var type = Ok(registry.CreateThingType(request.ThingTypeName, properties?.ThingTypeDescription, properties?.SearchableAttributes));
        return DoneAsync(new CreateThingTypeResponse { ThingTypeName = type.Name, ThingTypeArn = type.Arn, ThingTypeId = type.Id });
    }

    public Task<DescribeThingTypeResponse> DescribeThingTypeAsync(DescribeThingTypeRequest request, CancellationToken cancellationToken)
    {
        var type = Ok(registry.DescribeThingType(request.ThingTypeName));
        return DoneAsync(new DescribeThingTypeResponse
        {
            ThingTypeName = type.Name,
            ThingTypeId = type.Id,
            ThingTypeArn = type.Arn,
            ThingTypeProperties = TypeProperties(type),
            ThingTypeMetadata = TypeMetadata(type),
        });
    }

    public Task<ListThingTypesResponse> ListThingTypesAsync(ListThingTypesRequest request, CancellationToken cancellationToken)
    {
        var page = registry.ListThingTypes(request.NextToken, request.MaxResults, request.ThingTypeName);
        return DoneAsync(new ListThingTypesResponse
        {
            ThingTypes = [.. page.Items.Select(t => new ThingTypeDefinition
            {
                ThingTypeName = t.Name,
                ThingTypeArn = t.Arn,
                ThingTypeProperties = TypeProperties(t),
                ThingTypeMetadata = TypeMetadata(t),
            })],
            NextToken = page.NextToken,
        });
    }

    public Task<DeprecateThingTypeResponse> DeprecateThingTypeAsync(DeprecateThingTypeRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<DeprecateThingTypeResponse>(registry.DeprecateThingType(request.ThingTypeName, request.UndoDeprecate ?? false));

    public Task<DeleteThingTypeResponse> DeleteThingTypeAsync(DeleteThingTypeRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<DeleteThingTypeResponse>(registry.DeleteThingType(request.ThingTypeName));

    public Task<CreateThingGroupResponse> CreateThingGroupAsync(CreateThingGroupRequest request, CancellationToken cancellationToken)
    {
        var properties = request.ThingGroupProperties;
        var attributes = GroupAttributes(properties);
        var group = Ok(registry.CreateThingGroup(request.ThingGroupName, request.ParentGroupName, properties?.ThingGroupDescription, attributes));
        return DoneAsync(new CreateThingGroupResponse { ThingGroupName = group.Name, ThingGroupArn = group.Arn, ThingGroupId = group.Id });
    }

    public Task<DescribeThingGroupResponse> DescribeThingGroupAsync(DescribeThingGroupRequest request, CancellationToken cancellationToken)
    {
        var group = Ok(registry.DescribeThingGroup(request.ThingGroupName));
        return DoneAsync(new DescribeThingGroupResponse
        {
            ThingGroupName = group.Name,
            ThingGroupId = group.Id,
            ThingGroupArn = group.Arn,
            Version = group.Version,
            ThingGroupProperties = new ThingGroupProperties
            {
                ThingGroupDescription = group.Description,
                AttributePayload = new AttributePayload { Attributes = Map(group.Attributes) },
            },
            ThingGroupMetadata = new ThingGroupMetadata
            {
                ParentGroupName = group.Parent,
                RootToParentThingGroups = [.. group.Ancestors.Select(NameAndArn)],
                CreationDate = DateTimeOffset.FromUnixTimeMilliseconds(group.CreatedMs),
            },
            IndexName = group.IndexName,
            QueryString = group.QueryString,
            QueryVersion = group.QueryVersion,
            Status = group.IsDynamic ? dynamicGroups.StatusOf(group) : null,
        });
    }

    public Task<ListThingGroupsResponse> ListThingGroupsAsync(ListThingGroupsRequest request, CancellationToken cancellationToken)
    {
        var page = Ok(registry.ListThingGroups(request.NextToken, request.MaxResults, request.ParentGroup, request.NamePrefixFilter, request.Recursive ?? false));
        return DoneAsync(new ListThingGroupsResponse { ThingGroups = [.. page.Items.Select(g => NameAndArn(g.Name))], NextToken = page.NextToken });
    }

    public Task<UpdateThingGroupResponse> UpdateThingGroupAsync(UpdateThingGroupRequest request, CancellationToken cancellationToken)
    {
        var properties = request.ThingGroupProperties;
        var payload = properties.AttributePayload;
        var version = Ok(registry.UpdateThingGroup(request.ThingGroupName, properties.ThingGroupDescription, payload?.Attributes, payload?.Merge ?? false, request.ExpectedVersion));
        return DoneAsync(new UpdateThingGroupResponse { Version = version });
    }

    public Task<DeleteThingGroupResponse> DeleteThingGroupAsync(DeleteThingGroupRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<DeleteThingGroupResponse>(registry.DeleteThingGroup(request.ThingGroupName, request.ExpectedVersion));

    public Task<AddThingToThingGroupResponse> AddThingToThingGroupAsync(AddThingToThingGroupRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<AddThingToThingGroupResponse>(registry.AddThingToThingGroup(request.ThingGroupName, request.ThingGroupArn, request.ThingName, request.ThingArn));

    public Task<RemoveThingFromThingGroupResponse> RemoveThingFromThingGroupAsync(RemoveThingFromThingGroupRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<RemoveThingFromThingGroupResponse>(registry.RemoveThingFromThingGroup(request.ThingGroupName, request.ThingGroupArn, request.ThingName, request.ThingArn));

    public Task<ListThingsInThingGroupResponse> ListThingsInThingGroupAsync(ListThingsInThingGroupRequest request, CancellationToken cancellationToken)
    {
        var page = Ok(registry.ListThingsInThingGroup(request.ThingGroupName, request.Recursive ?? false, request.NextToken, request.MaxResults));
        return DoneAsync(new ListThingsInThingGroupResponse { Things = [.. page.Items], NextToken = page.NextToken });
    }

    public Task<ListThingGroupsForThingResponse> ListThingGroupsForThingAsync(ListThingGroupsForThingRequest request, CancellationToken cancellationToken)
    {
        var page = Ok(registry.ListThingGroupsForThing(request.ThingName, request.NextToken, request.MaxResults));
        return DoneAsync(new ListThingGroupsForThingResponse { ThingGroups = [.. page.Items.Select(g => NameAndArn(g.Name))], NextToken = page.NextToken });
    }

    private static ThingTypeProperties TypeProperties(ThingTypeRecord type) =>
        new() { ThingTypeDescription = type.Description, SearchableAttributes = type.SearchableAttributes };

    private static ThingTypeMetadata TypeMetadata(ThingTypeRecord type) => new()
    {
        Deprecated = type.Deprecated,
        DeprecationDate = type.DeprecatedMs is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null,
        CreationDate = DateTimeOffset.FromUnixTimeMilliseconds(type.CreatedMs),
    };

    /// <summary>A new group's attributes: the non-empty ones of the payload (AWS drops empty values).</summary>
    private static Dictionary<string, string>? GroupAttributes(ThingGroupProperties? properties) =>
        properties?.AttributePayload?.Attributes?.Where(a => !string.IsNullOrEmpty(a.Value)).ToDictionary(a => a.Key, a => a.Value!, StringComparer.Ordinal);

    private GroupNameAndArn NameAndArn(string group) => new() { GroupName = group, GroupArn = registry.Options.Arn("thinggroup/" + group) };
}
