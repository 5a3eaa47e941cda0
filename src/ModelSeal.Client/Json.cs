using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelSeal.Client;

// The bodies of docs/protocol.md the client sends and reads, and the lease file format.

internal sealed record TokenRequestBody(string GrantType, string LicenceId, string Credential);

internal sealed record TokenAnswer(string? AccessToken, string? TokenType, int ExpiresIn);

internal sealed record ReleaseRequestBody(string ModelId, string Version, string DevicePublicKey);

internal sealed record ReleaseAnswer(string? ModelId, string? Version, string? KeyId, string? Suite, string? Enc, string? SealedKey, string? LeaseExpiresAt);

internal sealed record ProblemAnswer(string? Type, string? Title, int? Status, string? Detail);

internal sealed record JwtPayload(string? Sub);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(TokenRequestBody))]
[JsonSerializable(typeof(TokenAnswer))]
[JsonSerializable(typeof(ReleaseRequestBody))]
[JsonSerializable(typeof(ReleaseAnswer))]
[JsonSerializable(typeof(ProblemAnswer))]
[JsonSerializable(typeof(JwtPayload))]
[JsonSerializable(typeof(ModelLease))]
internal sealed partial class ClientJson : JsonSerializerContext;
