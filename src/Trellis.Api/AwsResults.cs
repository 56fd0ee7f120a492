namespace Trellis.Api;

/// <summary>AWS rest-json responses: JSON bodies, and errors as <c>x-amzn-ErrorType</c> plus <c>{"message": …}</c>.</summary>
public static class AwsResults
{
    public static IResult Json(JsonObject body, int status = StatusCodes.Status200OK) =>
        Results.Text(body.ToJsonString(), "application/json", statusCode: status);

    public static IResult Empty() => Results.Text("{}", "application/json");

    /// <summary>Adds the paging token (<c>nextToken</c>, or <c>nextMarker</c> for the marker-paged routes) when there is a next page.</summary>
    public static JsonObject WithNext(JsonObject body, string? next, string name = "nextToken")
    {
        if (next is not null)
        {
            body[name] = next;
        }

        return body;
    }

    /// <summary>An empty success, or the error.</summary>
    public static IResult Done(TrellisError? error) => error is null ? Empty() : Error(error);

    public static IResult Error(TrellisError error)
    {
        var body = new JsonObject { ["message"] = error.Message };
        if (error is TrellisError.AlreadyExists exists)
        {
            body["resourceId"] = exists.ResourceId;
            body["resourceArn"] = exists.ResourceArn;
        }

        return new ErrorResult(error.Code, StatusFor(error), body);
    }

    public static IResult Error(string errorType, int status, string message) =>
        new ErrorResult(errorType, status, new JsonObject { ["message"] = message });

    /// <summary>The HTTP status of each error, from botocore's iot service model.</summary>
    public static int StatusFor(TrellisError error) => error switch
    {
        TrellisError.NotFound => 404,
        TrellisError.AlreadyExists => 409,
        TrellisError.VersionConflict => 409,
        TrellisError.DeleteConflict => 409,
        TrellisError.VersionsLimitExceeded => 409,
        TrellisError.CertificateState => 406,
        TrellisError.LimitExceeded => 410,
        TrellisError.Unauthorized => 401,
        TrellisError.Throttling => 429,
        TrellisError.RequestEntityTooLarge => 413,
        TrellisError.AccessDenied => 403,
        TrellisError.MalformedPolicy => 400,
        TrellisError.InvalidRequest => 400,
        TrellisError.CertificateValidation => 400,
        TrellisError.SqlParse => 400,
        TrellisError.RegistrationCodeValidation => 400,
        TrellisError.ResourceRegistrationFailure => 400,
        TrellisError.InvalidStateTransition => 409,
        TrellisError.TerminalState => 410,
        TrellisError.Conflict => 409,
        TrellisError.InvalidQuery => 400,
        TrellisError.IndexNotReady => 400,
        TrellisError.InvalidAggregation => 400,
        _ => 500,
    };

    /// <summary>Epoch seconds with milliseconds, as AWS rest-json timestamps.</summary>
    public static double Timestamp(long unixMs) => unixMs / 1000.0;

    private sealed class ErrorResult(string errorType, int status, JsonObject body) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.StatusCode = status;
            httpContext.Response.Headers["x-amzn-ErrorType"] = errorType;
            httpContext.Response.ContentType = "application/json";
            await httpContext.Response.WriteAsync(body.ToJsonString());
        }
    }
}
