using System.Text.Json.Serialization;

namespace Trellis.Jobs;

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(JobSettings))]
[JsonSerializable(typeof(IReadOnlyList<string>))]
[JsonSerializable(typeof(Dictionary<string, string>))]
[JsonSerializable(typeof(IReadOnlyList<Firmware.StreamFileRecord>))]
internal sealed partial class JobsJsonContext : JsonSerializerContext;
