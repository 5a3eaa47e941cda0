using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelSeal.Protocol;

/// <summary>
/// The source-generated JSON metadata of every protocol body: camelCase names, nulls omitted when writing (the server
/// writes nulls it means), and a reader that refuses an answer lacking a member the protocol always sends
/// (non-nullable members and constructor parameters without a default are required).
/// </summary>
[JsonSourceGenerationOptions(
    JsonSerializerDefaults.Web,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    RespectNullableAnnotations = true,
    RespectRequiredConstructorParameters = true,
    AllowDuplicateProperties = false,
    MaxDepth = 16)]
[JsonSerializable(typeof(TokenRequest))]
[JsonSerializable(typeof(TokenResponse))]
[JsonSerializable(typeof(ReleaseRequest))]
[JsonSerializable(typeof(ReleaseResponse))]
[JsonSerializable(typeof(ChallengeResponse))]
[JsonSerializable(typeof(ReverifyResponse))]
[JsonSerializable(typeof(CreateModelRequest))]
[JsonSerializable(typeof(ModelCreatedResponse))]
[JsonSerializable(typeof(ItemsResponse<ModelItem>))]
[JsonSerializable(typeof(CreateVersionRequest))]
[JsonSerializable(typeof(StateResponse))]
[JsonSerializable(typeof(CreateLicenceRequest))]
[JsonSerializable(typeof(LicenceResponse))]
[JsonSerializable(typeof(LicenceCreatedResponse))]
[JsonSerializable(typeof(ItemsResponse<LicenceResponse>))]
[JsonSerializable(typeof(ItemsResponse<DeviceItem>))]
[JsonSerializable(typeof(RotateResponse))]
[JsonSerializable(typeof(EditLicenceRequest))]
[JsonSerializable(typeof(ModelDeletedResponse))]
[JsonSerializable(typeof(DeviceItem))]
[JsonSerializable(typeof(UsageResponse))]
[JsonSerializable(typeof(AuditPage))]
[JsonSerializable(typeof(UserItem))]
[JsonSerializable(typeof(UserPageResponse))]
[JsonSerializable(typeof(UserDetailResponse))]
[JsonSerializable(typeof(UserDeviceItem))]
[JsonSerializable(typeof(ItemsResponse<UserDeviceItem>))]
[JsonSerializable(typeof(AuditVerifyResponse))]
[JsonSerializable(typeof(JwksResponse))]
[JsonSerializable(typeof(HealthResponse))]
[JsonSerializable(typeof(ProblemResponse))]
internal sealed partial class ProtocolJson : JsonSerializerContext;
