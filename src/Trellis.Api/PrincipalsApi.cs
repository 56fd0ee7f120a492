using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Trellis.Registry;

namespace Trellis.Api;

/// <summary>Thing–principal attachments and DescribeEndpoint.</summary>
public static class PrincipalsApi
{
    public static IEndpointRouteBuilder MapPrincipalsApi(this IEndpointRouteBuilder app, Func<string> tlsEndpoint)
    {
        app.MapPut("/things/{thingName}/principals", AttachThingPrincipal).WithName("AttachThingPrincipal");
        app.MapDelete("/things/{thingName}/principals", DetachThingPrincipal).WithName("DetachThingPrincipal");
        app.MapGet("/things/{thingName}/principals", ListThingPrincipals).WithName("ListThingPrincipals");
        app.MapGet("/principals/things", ListPrincipalThings).WithName("ListPrincipalThings");
        app.MapGet("/endpoint", (HttpRequest request) => DescribeEndpoint(request, tlsEndpoint)).WithName("DescribeEndpoint");
        return app;
    }

    private static IResult AttachThingPrincipal(string thingName, HttpRequest request, RegistryService registry)
    {
        var type = request.Query["thingPrincipalType"].ToString();
        if (type.Length > 0 && type is not ("EXCLUSIVE_THING" or "NON_EXCLUSIVE_THING"))
        {
            return AwsResults.Error("InvalidRequestException", 400, "thingPrincipalType must be EXCLUSIVE_THING or NON_EXCLUSIVE_THING.");
        }

        var principal = request.Headers["x-amzn-principal"].ToString();
        return registry.AttachThingPrincipal(thingName, principal, type == "EXCLUSIVE_THING") is { } error ? AwsResults.Error(error) : AwsResults.Empty();
    }

    private static IResult DetachThingPrincipal(string thingName, HttpRequest request, RegistryService registry) =>
        registry.DetachThingPrincipal(thingName, request.Headers["x-amzn-principal"].ToString()) is { } error ? AwsResults.Error(error) : AwsResults.Empty();

    private static IResult ListThingPrincipals(string thingName, HttpRequest request, RegistryService registry)
    {
        var max = RequestBody.QueryInt(request, "maxResults");
        if (!max.IsSuccess)
        {
            return AwsResults.Error(max.Error!);
        }

        var result = registry.ListThingPrincipals(thingName, RequestBody.QueryString(request, "nextToken"), max.Value);
        return result.IsSuccess ? StringPage("principals", result.Value!) : AwsResults.Error(result.Error!);
    }

    private static IResult ListPrincipalThings(HttpRequest request, RegistryService registry)
    {
        var max = RequestBody.QueryInt(request, "maxResults");
        if (!max.IsSuccess)
        {
            return AwsResults.Error(max.Error!);
        }

        var result = registry.ListPrincipalThings(request.Headers["x-amzn-principal"].ToString(), RequestBody.QueryString(request, "nextToken"), max.Value);
        return result.IsSuccess ? StringPage("things", result.Value!) : AwsResults.Error(result.Error!);
    }

    private static IResult DescribeEndpoint(HttpRequest request, Func<string> tlsEndpoint)
    {
        var type = request.Query["endpointType"].ToString();
        if (type.Length > 0 && type is not ("iot:Data" or "iot:Data-ATS"))
        {
            return AwsResults.Error("InvalidRequestException", 400, $"Endpoint type '{type}' is not served here: use iot:Data-ATS (MQTT over TLS).");
        }

        return AwsResults.Json(new JsonObject { ["endpointAddress"] = tlsEndpoint() });
    }

    private static IResult StringPage(string name, Page<string> page)
    {
        var body = new JsonObject { [name] = new JsonArray([.. page.Items.Select(i => (JsonNode)i)]) };
        AwsResults.WithNext(body, page.NextToken);

        return AwsResults.Json(body);
    }
}
