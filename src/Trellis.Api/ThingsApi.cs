using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Trellis.Registry;

namespace Trellis.Api;

/// <summary>AWS IoT thing routes: CreateThing, DescribeThing, ListThings, UpdateThing, DeleteThing.</summary>
public static class ThingsApi
{
    public static IEndpointRouteBuilder MapThingsApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/things/{thingName}", CreateThingAsync).WithName("CreateThing");
        app.MapGet("/things/{thingName}", DescribeThing).WithName("DescribeThing");
        app.MapGet("/things", ListThings).WithName("ListThings");
        app.MapMethods("/things/{thingName}", ["PATCH"], UpdateThingAsync).WithName("UpdateThing");
        app.MapDelete("/things/{thingName}", DeleteThing).WithName("DeleteThing");
        return app;
    }

    private static async Task<IResult> CreateThingAsync(string thingName, HttpRequest request, RegistryService registry)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!body.IsSuccess)
        {
            return AwsResults.Error(body.Error!);
        }

        var type = RequestBody.OptionalString(body.Value!, "thingTypeName");
        var payload = RequestBody.AttributePayload(body.Value!);
        if (!type.IsSuccess || !payload.IsSuccess)
        {
            return AwsResults.Error(type.Error ?? payload.Error!);
        }

        if (payload.Value.Attributes?.FirstOrDefault(a => a.Value is null) is { Key: not null } nullAttribute)
        {
            return AwsResults.Error("InvalidRequestException", 400, $"Attribute '{nullAttribute.Key}' must be a string.");
        }

        var attributes = payload.Value.Attributes?.ToDictionary(a => a.Key, a => a.Value!, StringComparer.Ordinal);
        var result = registry.CreateThing(thingName, type.Value, attributes);
        return result.IsSuccess
            ? AwsResults.Json(new JsonObject { ["thingName"] = result.Value!.Name, ["thingArn"] = result.Value.Arn, ["thingId"] = result.Value.Id })
            : AwsResults.Error(result.Error!);
    }

    private static IResult DescribeThing(string thingName, RegistryService registry)
    {
        var result = registry.DescribeThing(thingName);
        if (!result.IsSuccess)
        {
            return AwsResults.Error(result.Error!);
        }

        var thing = result.Value!;
        var body = new JsonObject
        {
            ["defaultClientId"] = thing.Name,
            ["thingName"] = thing.Name,
            ["thingId"] = thing.Id,
            ["thingArn"] = thing.Arn,
            ["attributes"] = Attributes(thing),
            ["version"] = thing.Version,
        };
        if (thing.TypeName is not null)
        {
            body["thingTypeName"] = thing.TypeName;
        }

        return AwsResults.Json(body);
    }

    private static IResult ListThings(HttpRequest request, RegistryService registry)
    {
        var max = RequestBody.QueryInt(request, "maxResults");
        var prefix = RequestBody.QueryBool(request, "usePrefixAttributeValue");
        if (!max.IsSuccess || !prefix.IsSuccess)
        {
            return AwsResults.Error(max.Error ?? prefix.Error!);
        }

        var q = request.Query;
        var attributeName = q["attributeName"].ToString();
        var attributeValue = q["attributeValue"].ToString();
        if ((attributeName.Length == 0) != (attributeValue.Length == 0))
        {
            return AwsResults.Error("InvalidRequestException", 400, "attributeName and attributeValue must be given together.");
        }

        var page = registry.ListThings(
            RequestBody.QueryString(request, "nextToken"),
            max.Value,
            attributeName.Length > 0 ? attributeName : null,
            attributeValue.Length > 0 ? attributeValue : null,
            prefix.Value,
            RequestBody.QueryString(request, "thingTypeName"));
        var things = new JsonArray();
        foreach (var thing in page.Items)
        {
            var item = new JsonObject { ["thingName"] = thing.Name, ["thingArn"] = thing.Arn, ["attributes"] = Attributes(thing), ["version"] = thing.Version };
            if (thing.TypeName is not null)
            {
                item["thingTypeName"] = thing.TypeName;
            }

            things.Add(item);
        }

        var body = new JsonObject { ["things"] = things };
        AwsResults.WithNext(body, page.NextToken);

        return AwsResults.Json(body);
    }

    private static async Task<IResult> UpdateThingAsync(string thingName, HttpRequest request, RegistryService registry)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!body.IsSuccess)
        {
            return AwsResults.Error(body.Error!);
        }

        var type = RequestBody.OptionalString(body.Value!, "thingTypeName");
        var remove = RequestBody.OptionalBool(body.Value!, "removeThingType");
        var expected = RequestBody.OptionalLong(body.Value!, "expectedVersion");
        var payload = RequestBody.AttributePayload(body.Value!);
        if (!type.IsSuccess || !remove.IsSuccess || !expected.IsSuccess || !payload.IsSuccess)
        {
            return AwsResults.Error(type.Error ?? remove.Error ?? expected.Error ?? payload.Error!);
        }

        // AWS: attributePayload.merge defaults to false, which replaces all attributes.
        var result = registry.UpdateThing(thingName, type.Value, remove.Value ?? false, payload.Value.Attributes, payload.Value.Merge, expected.Value);
        return result.IsSuccess ? AwsResults.Empty() : AwsResults.Error(result.Error!);
    }

    private static IResult DeleteThing(string thingName, HttpRequest request, RegistryService registry)
    {
        long? expected = null;
        if (request.Query["expectedVersion"].ToString() is { Length: > 0 } raw)
        {
            if (!long.TryParse(raw, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var v))
            {
                return AwsResults.Error("InvalidRequestException", 400, "expectedVersion must be an integer.");
            }

            expected = v;
        }

        var error = registry.DeleteThing(thingName, expected);
        return error is null ? AwsResults.Empty() : AwsResults.Error(error);
    }

    private static JsonObject Attributes(ThingRecord thing)
    {
        var attributes = new JsonObject();
        foreach (var (key, value) in thing.Attributes)
        {
            attributes[key] = value;
        }

        return attributes;
    }
}
