using Trellis.Registry;

namespace Trellis.Api.Aws.Iot;

/// <summary>
/// The AWS IoT control-plane operations served through the model-driven dispatcher. One partial file
/// per area; each method takes the generated request shape and returns the generated response shape,
/// and refuses by throwing <see cref="AwsErrorException"/> with the domain's error.
/// </summary>
public sealed partial class IotOperations(
    RegistryService registry,
    IotEndpoints endpoints,
    IKeyPairLimit keyPairs,
    Rules.RuleEngine rules,
    Rules.TopicRuleDestinations destinations,
    Jobs.JobService jobs,
    Jobs.Firmware.FileStreams streams,
    Trellis.Registry.ThingConnectivity connectivity,
    Fleet.FleetIndex index,
    Fleet.DynamicGroups dynamicGroups,
    Fleet.FleetMetrics fleetMetrics,
    Fleet.Defender.Defender defender,
    Microsoft.AspNetCore.Http.IHttpContextAccessor callers) : IIotOperations
{
    private static T Ok<T>(Result<T> result) => result.IsSuccess ? result.Value! : throw new AwsErrorException(result.Error!);

    private static void Ok(TrellisError? error)
    {
        if (error is not null)
        {
            throw new AwsErrorException(error);
        }
    }

    private static Task<T> DoneAsync<T>(T value) => Task.FromResult(value);

    /// <summary>A domain time (Unix milliseconds) as the shapes' timestamp.</summary>
    private static DateTimeOffset Time(long unixMs) => DateTimeOffset.FromUnixTimeMilliseconds(unixMs);

    /// <summary>An operation with no output: done, or the domain's refusal.</summary>
    private static Task<AwsEmpty> EmptyAsync(TrellisError? error) => EmptyAsync<AwsEmpty>(error);

    /// <summary>An operation whose output shape has no members: done, or the domain's refusal.</summary>
    private static Task<T> EmptyAsync<T>(TrellisError? error)
        where T : new()
    {
        Ok(error);
        return DoneAsync(new T());
    }

    private static IReadOnlyDictionary<string, string?> Map(IReadOnlyDictionary<string, string> values) =>
        values.ToDictionary(v => v.Key, v => (string?)v.Value, StringComparer.Ordinal);
}
