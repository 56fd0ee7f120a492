using System.Text.Json.Serialization;

namespace Trellis.Broker.Persistence;

[JsonSerializable(typeof(List<StoredSubscription>))]
[JsonSerializable(typeof(StoredProperties))]
internal sealed partial class StoreJsonContext : JsonSerializerContext;
