using Trellis.Registry;

namespace Trellis.Api;

/// <summary>
/// Enforces API roles after SigV4: <c>viewer</c> may only read (GET, Describe…, List…),
/// <c>operator</c> may do everything but manage users and trusted CAs, <c>admin</c> everything. A refusal is a 403
/// AccessDeniedException that names the permission (<c>iot:{Operation}</c>) and the role.
/// </summary>
public sealed class RoleMiddleware(RequestDelegate next, ApiUsers users)
{
    private static readonly HashSet<string> UserOperations = new(StringComparer.Ordinal) { "CreateApiUser", "ListApiUsers", "DeleteApiUser", "RotateApiUserKey" };

    /// <summary>Trusting a CA lets anything it signs in: only admins change which CAs are trusted.</summary>
    private static readonly HashSet<string> CaOperations = new(StringComparer.Ordinal)
    {
        "RegisterCACertificate", "UpdateCACertificate", "DeleteCACertificate", "GetRegistrationCode", "RegisterCertificateWithoutCA",
    };

    /// <summary>A webhook target is a way out of the network, an email one reads mail: only admins name them.</summary>
    private static readonly HashSet<string> NotificationOperations = new(StringComparer.Ordinal) { "PutNotificationTarget", "DeleteNotificationTarget", "TestNotificationTarget" };

    public async Task InvokeAsync(HttpContext context)
    {
        var operation = context.GetEndpoint()?.Metadata.GetMetadata<IEndpointNameMetadata>()?.EndpointName;
        if (context.Items["trellis.accessKeyId"] is not string key || operation is null)
        {
            await next(context);
            return;
        }

        var role = users.RoleOf(key) ?? ApiRoles.Viewer;
        var method = context.Request.Method;
        var read = HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || operation.StartsWith("List", StringComparison.Ordinal);
        string? why = null;
        if (UserOperations.Contains(operation) && role != ApiRoles.Admin)
        {
            why = "only admin keys manage API users";
        }
        else if (CaOperations.Contains(operation) && role != ApiRoles.Admin)
        {
            why = "only admin keys manage trusted CAs";
        }
        else if (NotificationOperations.Contains(operation) && role != ApiRoles.Admin)
        {
            why = "only admin keys manage notification targets";
        }
        else if (!read && role == ApiRoles.Viewer)
        {
            why = "viewer keys are read-only";
        }

        if (why is not null)
        {
            await AwsResults.Error("AccessDeniedException", StatusCodes.Status403Forbidden,
                $"User {key} (role {role}) is not authorized to perform: iot:{operation}: {why}. Ask an admin for an operator or admin key.").ExecuteAsync(context);
            return;
        }

        await next(context);
    }
}

/// <summary><c>/api/users</c>: API access keys for people and services, with roles (admin only).</summary>
public static class UsersApi
{
    public static IEndpointRouteBuilder MapUsersApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/users", CreateAsync).WithName("CreateApiUser");
        app.MapGet("/api/users", (ApiUsers users) => AwsResults.Json(new JsonObject
        {
            ["users"] = new JsonArray([.. users.List().Select(u => (JsonNode?)Describe(u))]),
        })).WithName("ListApiUsers");
        app.MapDelete("/api/users/{accessKeyId}", (string accessKeyId, ApiUsers users) => AwsResults.Done(users.Delete(accessKeyId))).WithName("DeleteApiUser");
        app.MapPost("/api/users/{accessKeyId}/rotate", (string accessKeyId, ApiUsers users) =>
        {
            var rotated = users.Rotate(accessKeyId);
            return rotated.IsSuccess ? AwsResults.Json(WithSecret(rotated.Value)) : AwsResults.Error(rotated.Error!);
        }).WithName("RotateApiUserKey");
        return app;
    }

    private static async Task<IResult> CreateAsync(HttpRequest request, ApiUsers users)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        var name = body.IsSuccess ? RequestBody.OptionalString(body.Value!, "name") : default;
        var role = body.IsSuccess ? RequestBody.OptionalString(body.Value!, "role") : default;
        if (!body.IsSuccess || !name.IsSuccess || !role.IsSuccess)
        {
            return AwsResults.Error(body.Error ?? name.Error ?? role.Error!);
        }

        var result = users.Create(name.Value, role.Value);
        if (!result.IsSuccess)
        {
            return AwsResults.Error(result.Error!);
        }

        return AwsResults.Json(WithSecret(result.Value));
    }

    /// <summary>A user with its new secret: the only time the secret is shown.</summary>
    private static JsonObject WithSecret((ApiUser User, string Secret) created)
    {
        var answer = Describe(created.User);
        answer["secretAccessKey"] = created.Secret;
        return answer;
    }

    private static JsonObject Describe(ApiUser user) => new()
    {
        ["accessKeyId"] = user.AccessKeyId,
        ["name"] = user.Name,
        ["role"] = user.Role,
        ["creationDate"] = AwsResults.Timestamp(user.CreatedMs),
    };
}
