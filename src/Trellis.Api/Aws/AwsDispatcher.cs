namespace Trellis.Api.Aws;

/// <summary>
/// Serves the AWS operations from the generated route table (<see cref="AwsModel"/>): one endpoint per
/// method and URI template. An implemented operation runs its generated invoker (bind and check the
/// input shape, call the handler, write the output shape); an operation the model has and Trellis
/// does not answers 501 naming it. Routes two models share (iot and iot-jobs-data both have
/// <c>GET /things/{thingName}/jobs</c>) are told apart by the service the request was signed for.
/// </summary>
public static class AwsDispatcher
{
    /// <summary>Every route of the three models.</summary>
    public static IReadOnlyList<AwsRoute> Routes { get; } = [.. AwsModel.IotRoutes, .. AwsModel.IotDataRoutes, .. AwsModel.IotJobsDataRoutes];

    /// <summary>
    /// Maps the model's routes. Call it after the hand-written routes: an operation already mapped by
    /// name is left to them, and what is neither gets the 501 answer (at a lower priority, so a
    /// hand-written route on the same path always wins).
    /// </summary>
    public static IEndpointRouteBuilder MapAwsModel(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var mapped = app.DataSources.SelectMany(d => d.Endpoints)
            .Select(e => e.Metadata.GetMetadata<IEndpointNameMetadata>()?.EndpointName)
            .Where(n => n is not null)
            .ToHashSet(StringComparer.Ordinal);
        var named = new HashSet<string>(mapped!, StringComparer.Ordinal);
        foreach (var group in Routes.Where(r => !mapped.Contains(r.Operation) || r.Implemented).GroupBy(r => (r.Method, Key(r.RoutePattern))))
        {
            var routes = group.ToArray();
            var implemented = routes.Any(r => r.Implemented);
            var builder = app.MapMethods(routes[0].RoutePattern, [routes[0].Method], context => DispatchAsync(context, routes));

            // The operation's name is what the role check and the audit log read; names are unique per endpoint.
            var name = routes.FirstOrDefault(r => r.Implemented)?.Operation ?? routes[0].Operation;
            if (named.Add(name))
            {
                builder.WithName(name);
            }

            if (!implemented)
            {
                builder.Add(b => ((RouteEndpointBuilder)b).Order = 1000);
            }
        }

        return app;
    }

    private static string Key(string pattern) => System.Text.RegularExpressions.Regex.Replace(pattern, @"\{[^}]+\}", "{}");

    private static async Task DispatchAsync(HttpContext context, AwsRoute[] routes)
    {
        var route = routes.Length == 1 ? routes[0] : Pick(context, routes);
        if (!route.Implemented || Invoker(route) is not { } invoke)
        {
            await AwsResults.Error("NotImplementedException", StatusCodes.Status501NotImplemented,
                $"Trellis does not implement {route.Operation} ({route.Service}) yet; docs/api.md lists the operations it serves.").ExecuteAsync(context);
            return;
        }

        try
        {
            await invoke(context, route);
        }
        catch (AwsErrorException e)
        {
            await (e.Error is { } error ? AwsResults.Error(error) : AwsResults.Error(e.ErrorType, e.Status, e.Message)).ExecuteAsync(context);
        }
    }

    /// <summary>Two models on one path: the one whose signing name the request's credential scope names.</summary>
    private static AwsRoute Pick(HttpContext context, AwsRoute[] routes)
    {
        var service = context.Items["trellis.signingService"] as string;
        return routes.FirstOrDefault(r => r.SigningName == service) ?? routes.FirstOrDefault(r => r.Implemented) ?? routes[0];
    }

    private static Func<HttpContext, AwsRoute, Task>? Invoker(AwsRoute route) => route.Service switch
    {
        "iot" => Iot.IotInvokers.All.GetValueOrDefault(route.Operation),
        "iot-data" => IotData.IotDataInvokers.All.GetValueOrDefault(route.Operation),
        "iot-jobs-data" => IotJobsData.IotJobsDataInvokers.All.GetValueOrDefault(route.Operation),
        _ => null,
    };
}
