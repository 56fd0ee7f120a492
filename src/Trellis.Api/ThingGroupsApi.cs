using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Trellis.Registry;

namespace Trellis.Api;

/// <summary>AWS IoT thing types and thing groups (routes and shapes from botocore's iot model).</summary>
public static class ThingGroupsApi
{
    private static readonly string[] MembershipFields = ["thingGroupName", "thingGroupArn", "thingName", "thingArn"];

    public static IEndpointRouteBuilder MapThingGroupsApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/thing-types/{thingTypeName}", CreateThingTypeAsync).WithName("CreateThingType");
        app.MapGet("/thing-types/{thingTypeName}", DescribeThingType).WithName("DescribeThingType");
        app.MapGet("/thing-types", ListThingTypes).WithName("ListThingTypes");
        app.MapPost("/thing-types/{thingTypeName}/deprecate", DeprecateThingTypeAsync).WithName("DeprecateThingType");
        app.MapDelete("/thing-types/{thingTypeName}", (string thingTypeName, RegistryService registry) => AwsResults.Done(registry.DeleteThingType(thingTypeName))).WithName("DeleteThingType");

        // The fixed routes first: "addThingToThingGroup" is not a group name.
        app.MapPut("/thing-groups/addThingToThingGroup", (HttpRequest request, RegistryService registry) => MembershipAsync(request, registry, add: true)).WithName("AddThingToThingGroup");
        app.MapPut("/thing-groups/removeThingFromThingGroup", (HttpRequest request, RegistryService registry) => MembershipAsync(request, registry, add: false)).WithName("RemoveThingFromThingGroup");
        app.MapPost("/thing-groups/{thingGroupName}", CreateThingGroupAsync).WithName("CreateThingGroup");
        app.MapGet("/thing-groups/{thingGroupName}", DescribeThingGroup).WithName("DescribeThingGroup");
        app.MapGet("/thing-groups", ListThingGroups).WithName("ListThingGroups");
        app.MapMethods("/thing-groups/{thingGroupName}", ["PATCH"], UpdateThingGroupAsync).WithName("UpdateThingGroup");
        app.MapDelete("/thing-groups/{thingGroupName}", DeleteThingGroup).WithName("DeleteThingGroup");
        app.MapGet("/thing-groups/{thingGroupName}/things", ListThingsInThingGroup).WithName("ListThingsInThingGroup");
        app.MapGet("/things/{thingName}/thing-groups", ListThingGroupsForThing).WithName("ListThingGroupsForThing");
        return app;
    }

    private static async Task<IResult> CreateThingTypeAsync(string thingTypeName, HttpRequest request, RegistryService registry)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!body.IsSuccess)
        {
            return AwsResults.Error(body.Error!);
        }

        var properties = body.Value!["thingTypeProperties"] as JsonObject;
        if (body.Value!["thingTypeProperties"] is not null and not JsonObject)
        {
            return AwsResults.Error("InvalidRequestException", 400, "thingTypeProperties must be an object.");
        }

        Core.Errors.Result<string?> description = properties is null ? default : RequestBody.OptionalString(properties, "thingTypeDescription");
        if (!description.IsSuccess)
        {
            return AwsResults.Error(description.Error!);
        }

        List<string>? searchable = null;
        if (properties?["searchableAttributes"] is { } list)
        {
            if (list is not JsonArray array || array.Any(a => a is not JsonValue v || !v.TryGetValue<string>(out _)))
            {
                return AwsResults.Error("InvalidRequestException", 400, "searchableAttributes must be a list of attribute names.");
            }

            searchable = [.. array.Select(a => a!.GetValue<string>())];
        }

        var result = registry.CreateThingType(thingTypeName, description.Value, searchable);
        return result.IsSuccess
            ? AwsResults.Json(new JsonObject { ["thingTypeName"] = result.Value!.Name, ["thingTypeArn"] = result.Value.Arn, ["thingTypeId"] = result.Value.Id })
            : AwsResults.Error(result.Error!);
    }

    private static IResult DescribeThingType(string thingTypeName, RegistryService registry)
    {
        var result = registry.DescribeThingType(thingTypeName);
        if (!result.IsSuccess)
        {
            return AwsResults.Error(result.Error!);
        }

        var body = TypeDefinition(result.Value!);
        body["thingTypeId"] = result.Value!.Id;
        return AwsResults.Json(body);
    }

    private static IResult ListThingTypes(HttpRequest request, RegistryService registry)
    {
        var max = RequestBody.QueryInt(request, "maxResults");
        if (!max.IsSuccess)
        {
            return AwsResults.Error(max.Error!);
        }

        var page = registry.ListThingTypes(RequestBody.QueryString(request, "nextToken"), max.Value, RequestBody.QueryString(request, "thingTypeName"));
        var body = new JsonObject { ["thingTypes"] = new JsonArray([.. page.Items.Select(t => (JsonNode?)TypeDefinition(t))]) };
        AwsResults.WithNext(body, page.NextToken);
        return AwsResults.Json(body);
    }

    private static async Task<IResult> DeprecateThingTypeAsync(string thingTypeName, HttpRequest request, RegistryService registry)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        var undo = body.IsSuccess ? RequestBody.OptionalBool(body.Value!, "undoDeprecate") : default;
        if (!body.IsSuccess || !undo.IsSuccess)
        {
            return AwsResults.Error(body.Error ?? undo.Error!);
        }

        return AwsResults.Done(registry.DeprecateThingType(thingTypeName, undo.Value ?? false));
    }

    private static async Task<IResult> CreateThingGroupAsync(string thingGroupName, HttpRequest request, RegistryService registry)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!body.IsSuccess)
        {
            return AwsResults.Error(body.Error!);
        }

        var parent = RequestBody.OptionalString(body.Value!, "parentGroupName");
        var properties = GroupProperties(body.Value!);
        if (!parent.IsSuccess || !properties.IsSuccess)
        {
            return AwsResults.Error(parent.Error ?? properties.Error!);
        }

        var attributes = properties.Value.Attributes?.Where(a => !string.IsNullOrEmpty(a.Value)).ToDictionary(a => a.Key, a => a.Value!, StringComparer.Ordinal);
        var result = registry.CreateThingGroup(thingGroupName, parent.Value, properties.Value.Description, attributes);
        return result.IsSuccess
            ? AwsResults.Json(new JsonObject { ["thingGroupName"] = result.Value!.Name, ["thingGroupArn"] = result.Value.Arn, ["thingGroupId"] = result.Value.Id })
            : AwsResults.Error(result.Error!);
    }

    private static IResult DescribeThingGroup(string thingGroupName, RegistryService registry)
    {
        var result = registry.DescribeThingGroup(thingGroupName);
        if (!result.IsSuccess)
        {
            return AwsResults.Error(result.Error!);
        }

        var group = result.Value!;
        var properties = new JsonObject { ["attributePayload"] = new JsonObject { ["attributes"] = Attributes(group.Attributes) } };
        if (group.Description is not null)
        {
            properties["thingGroupDescription"] = group.Description;
        }

        var metadata = new JsonObject
        {
            ["creationDate"] = AwsResults.Timestamp(group.CreatedMs),
            ["rootToParentThingGroups"] = new JsonArray([.. group.Ancestors.Select(a => (JsonNode?)NameAndArn(a, registry))]),
        };
        if (group.Parent is not null)
        {
            metadata["parentGroupName"] = group.Parent;
        }

        return AwsResults.Json(new JsonObject
        {
            ["thingGroupName"] = group.Name,
            ["thingGroupId"] = group.Id,
            ["thingGroupArn"] = group.Arn,
            ["version"] = group.Version,
            ["thingGroupProperties"] = properties,
            ["thingGroupMetadata"] = metadata,
            ["status"] = "ACTIVE",
        });
    }

    private static IResult ListThingGroups(HttpRequest request, RegistryService registry)
    {
        var max = RequestBody.QueryInt(request, "maxResults");
        var recursive = RequestBody.QueryBool(request, "recursive");
        if (!max.IsSuccess || !recursive.IsSuccess)
        {
            return AwsResults.Error(max.Error ?? recursive.Error!);
        }

        var page = registry.ListThingGroups(RequestBody.QueryString(request, "nextToken"), max.Value, RequestBody.QueryString(request, "parentGroup"), RequestBody.QueryString(request, "namePrefixFilter"), recursive.Value);
        return page.IsSuccess ? GroupList(page.Value!) : AwsResults.Error(page.Error!);
    }

    private static async Task<IResult> UpdateThingGroupAsync(string thingGroupName, HttpRequest request, RegistryService registry)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!body.IsSuccess)
        {
            return AwsResults.Error(body.Error!);
        }

        if (body.Value!["thingGroupProperties"] is not JsonObject)
        {
            return AwsResults.Error("InvalidRequestException", 400, "thingGroupProperties is required.");
        }

        var properties = GroupProperties(body.Value!);
        var expected = RequestBody.OptionalLong(body.Value!, "expectedVersion");
        if (!properties.IsSuccess || !expected.IsSuccess)
        {
            return AwsResults.Error(properties.Error ?? expected.Error!);
        }

        var result = registry.UpdateThingGroup(thingGroupName, properties.Value.Description, properties.Value.Attributes, properties.Value.Merge, expected.Value);
        return result.IsSuccess ? AwsResults.Json(new JsonObject { ["version"] = result.Value }) : AwsResults.Error(result.Error!);
    }

    private static IResult DeleteThingGroup(string thingGroupName, HttpRequest request, RegistryService registry)
    {
        var expected = RequestBody.QueryInt(request, "expectedVersion");
        return expected.IsSuccess ? AwsResults.Done(registry.DeleteThingGroup(thingGroupName, expected.Value)) : AwsResults.Error(expected.Error!);
    }

    private static async Task<IResult> MembershipAsync(HttpRequest request, RegistryService registry, bool add)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!body.IsSuccess)
        {
            return AwsResults.Error(body.Error!);
        }

        var values = MembershipFields.Select(n => RequestBody.OptionalString(body.Value!, n)).ToArray();
        if (values.FirstOrDefault(v => !v.IsSuccess) is { Error: { } error })
        {
            return AwsResults.Error(error);
        }

        return AwsResults.Done(add
            ? registry.AddThingToThingGroup(values[0].Value, values[1].Value, values[2].Value, values[3].Value)
            : registry.RemoveThingFromThingGroup(values[0].Value, values[1].Value, values[2].Value, values[3].Value));
    }

    private static IResult ListThingsInThingGroup(string thingGroupName, HttpRequest request, RegistryService registry)
    {
        var max = RequestBody.QueryInt(request, "maxResults");
        var recursive = RequestBody.QueryBool(request, "recursive");
        if (!max.IsSuccess || !recursive.IsSuccess)
        {
            return AwsResults.Error(max.Error ?? recursive.Error!);
        }

        var page = registry.ListThingsInThingGroup(thingGroupName, recursive.Value, RequestBody.QueryString(request, "nextToken"), max.Value);
        if (!page.IsSuccess)
        {
            return AwsResults.Error(page.Error!);
        }

        var body = new JsonObject { ["things"] = new JsonArray([.. page.Value!.Items.Select(t => (JsonNode?)t)]) };
        AwsResults.WithNext(body, page.Value.NextToken);
        return AwsResults.Json(body);
    }

    private static IResult ListThingGroupsForThing(string thingName, HttpRequest request, RegistryService registry)
    {
        var max = RequestBody.QueryInt(request, "maxResults");
        if (!max.IsSuccess)
        {
            return AwsResults.Error(max.Error!);
        }

        var page = registry.ListThingGroupsForThing(thingName, RequestBody.QueryString(request, "nextToken"), max.Value);
        return page.IsSuccess ? GroupList(page.Value!) : AwsResults.Error(page.Error!);
    }

    private static IResult GroupList(Page<ThingGroupRecord> page)
    {
        var body = new JsonObject { ["thingGroups"] = new JsonArray([.. page.Items.Select(g => (JsonNode?)new JsonObject { ["groupName"] = g.Name, ["groupArn"] = g.Arn })]) };
        AwsResults.WithNext(body, page.NextToken);
        return AwsResults.Json(body);
    }

    /// <summary>thingGroupProperties: description and attributePayload (attributes, merge).</summary>
    private static Core.Errors.Result<(string? Description, Dictionary<string, string?>? Attributes, bool Merge)> GroupProperties(JsonObject body)
    {
        if (body["thingGroupProperties"] is null)
        {
            return (null, null, false);
        }

        if (body["thingGroupProperties"] is not JsonObject properties)
        {
            return new Core.Errors.TrellisError.InvalidRequest("thingGroupProperties must be an object.");
        }

        var description = RequestBody.OptionalString(properties, "thingGroupDescription");
        var payload = RequestBody.AttributePayload(properties);
        if (!description.IsSuccess || !payload.IsSuccess)
        {
            return (description.Error ?? payload.Error)!;
        }

        return (description.Value, payload.Value.Attributes, payload.Value.Merge);
    }

    private static JsonObject TypeDefinition(ThingTypeRecord type)
    {
        var properties = new JsonObject { ["searchableAttributes"] = new JsonArray([.. type.SearchableAttributes.Select(a => (JsonNode?)a)]) };
        if (type.Description is not null)
        {
            properties["thingTypeDescription"] = type.Description;
        }

        var metadata = new JsonObject { ["deprecated"] = type.Deprecated, ["creationDate"] = AwsResults.Timestamp(type.CreatedMs) };
        if (type.DeprecatedMs is { } deprecated)
        {
            metadata["deprecationDate"] = AwsResults.Timestamp(deprecated);
        }

        return new JsonObject
        {
            ["thingTypeName"] = type.Name,
            ["thingTypeArn"] = type.Arn,
            ["thingTypeProperties"] = properties,
            ["thingTypeMetadata"] = metadata,
        };
    }

    private static JsonObject NameAndArn(string group, RegistryService registry) =>
        new() { ["groupName"] = group, ["groupArn"] = registry.Options.Arn("thinggroup/" + group) };

    private static JsonObject Attributes(IReadOnlyDictionary<string, string> attributes) =>
        new(attributes.Select(a => KeyValuePair.Create(a.Key, (JsonNode?)a.Value)));
}
