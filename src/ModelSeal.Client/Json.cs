using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelSeal.Client;

// The lease file format (the protocol's bodies are ModelSeal.Protocol.ProtocolJson).

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ModelLease))]
internal sealed partial class ClientJson : JsonSerializerContext;
