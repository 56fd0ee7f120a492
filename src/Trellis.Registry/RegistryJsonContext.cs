using System.Text.Json.Serialization;

namespace Trellis.Registry;

[JsonSerializable(typeof(IReadOnlyDictionary<string, string>))]
[JsonSerializable(typeof(IReadOnlyList<string>))]
[JsonSerializable(typeof(CaRegistrationConfig))]
[JsonSerializable(typeof(ProvisioningHookConfig))]
internal sealed partial class RegistryJsonContext : JsonSerializerContext;
