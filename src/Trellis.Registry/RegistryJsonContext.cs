using System.Text.Json.Serialization;

namespace Trellis.Registry;

[JsonSerializable(typeof(IReadOnlyDictionary<string, string>))]
internal sealed partial class RegistryJsonContext : JsonSerializerContext;
