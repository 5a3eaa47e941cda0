using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelSeal.Cli;

/// <summary>The --json result of <c>encrypt</c>.</summary>
internal sealed record EncryptResult(
    string Input,
    string Output,
    string ModelId,
    string ModelVersion,
    string KeyId,
    string ContentType,
    long PlaintextLength,
    long ChunkCount,
    int HeaderLength,
    long SealedLength,
    DateTimeOffset? SealedAt,
    long ElapsedMilliseconds)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "encrypt";
}

/// <summary>The --json result of <c>decrypt</c>.</summary>
internal sealed record DecryptResult(
    string Input,
    string Output,
    string ModelId,
    string ModelVersion,
    string KeyId,
    string ContentType,
    long PlaintextLength,
    long ChunkCount,
    DateTimeOffset? SealedAt,
    long ElapsedMilliseconds)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "decrypt";

    public bool Authenticated { get; init; } = true;
}

/// <summary>The --json result of <c>verify</c>.</summary>
internal sealed record VerifyResult(
    string Input,
    string ModelId,
    string ModelVersion,
    string KeyId,
    string ContentType,
    long PlaintextLength,
    long ChunkCount,
    long SealedLength,
    DateTimeOffset? SealedAt,
    long ElapsedMilliseconds)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "verify";

    public bool Authenticated { get; init; } = true;
}

/// <summary>The --json result of <c>inspect</c>: header facts only, nothing authenticated.</summary>
internal sealed record InspectResult(
    string Input,
    int FormatVersion,
    int HeaderLength,
    string ModelId,
    string ModelVersion,
    string KeyId,
    string ContentType,
    long PlaintextLength,
    long ChunkCount,
    long PayloadLength,
    long SealedLength,
    long FileLength,
    DateTimeOffset? SealedAt,
    bool LengthMatches,
    string? Warning)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "inspect";

    public bool Authenticated { get; init; }
}

/// <summary>The --json result of <c>keygen</c>: the key id and the file, never the key.</summary>
internal sealed record KeygenResult(string Output, string KeyId)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "keygen";
}

/// <summary>The --json result of <c>model add</c>.</summary>
internal sealed record ModelAddResult(string Server, string ModelId, string CreatedAt)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "model add";
}

/// <summary>A model and its versions in <see cref="ModelListResult"/>.</summary>
internal sealed record ModelEntry(string ModelId, string CreatedAt, IReadOnlyList<VersionEntry> Versions);

/// <summary>A version of a model in <see cref="ModelEntry"/>.</summary>
internal sealed record VersionEntry(string Version, string State, string KeyId, string CreatedAt);

/// <summary>The --json result of <c>model list</c>.</summary>
internal sealed record ModelListResult(string Server, IReadOnlyList<ModelEntry> Models)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "model list";
}

/// <summary>
/// A licence in <see cref="LicenceListResult"/> and the other licence results; never its credential.
/// <c>attestationPolicy</c> is the key server's attestation policy the licence's devices must satisfy (null: none).
/// </summary>
internal sealed record LicenceEntry(string LicenceId, string Subject, IReadOnlyList<string> Models, int MaxDevices, string? NotBefore, string? ExpiresAt, string CreatedAt, string? RevokedAt, string? AttestationPolicy);

/// <summary>The --json result of <c>licence add</c>: the licence and where its credential is (not the credential).</summary>
internal sealed record LicenceAddResult(string Server, LicenceEntry Licence, string CredentialFile, IReadOnlyList<string> Warnings)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "licence add";
}

/// <summary>The --json result of <c>licence revoke</c>.</summary>
internal sealed record LicenceRevokeResult(string Server, LicenceEntry Licence, bool AlreadyRevoked)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "licence revoke";
}

/// <summary>The --json result of <c>licence list</c>.</summary>
internal sealed record LicenceListResult(string Server, IReadOnlyList<LicenceEntry> Licences)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "licence list";
}

/// <summary>The --json result of <c>token issue</c>: the token is the result (a secret for its lifetime).</summary>
internal sealed record TokenIssueResult(string Server, string LicenceId, string AccessToken, string TokenType, int ExpiresIn)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "token issue";
}

/// <summary>The --json result of <c>serve</c>, printed once the server listens.</summary>
internal sealed record ServeResult(IReadOnlyList<string> Urls, string DataDirectory, string AnswerKeyId, string? AdminCredentialWritten)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "serve";
}

/// <summary>The --json result of <c>admin-credential rotate</c>: where the credential is, never the credential.</summary>
internal sealed record AdminCredentialRotateResult(string CredentialFile, long Epoch)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "admin-credential rotate";
}

/// <summary>The --json result of <c>master-key migrate</c>.</summary>
internal sealed record MasterKeyMigrateResult(int Rewrapped, int MasterKeyVersion, string? RetiredMasterKeysFile)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "master-key migrate";
}

/// <summary>The --json result of <c>database migrate</c>.</summary>
internal sealed record DatabaseMigrateResult(long Models, long Versions, long Licences, long Devices, long Users, long UserDevices, long AuditRecords, string RetiredDatabaseFile)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "database migrate";
}

/// <summary>The --json result of <c>demo</c> (its step-by-step report goes to standard error).</summary>
internal sealed record DemoResult(bool Passed, string ModelId, string ModelVersion, string LicenceId, long KeyMilliseconds, long OpenMilliseconds, long InferenceMilliseconds, bool OutputsMatch, bool TamperRejected)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "demo";
}

/// <summary>The --json result of <c>model disable</c>, <c>model enable</c> and <c>model destroy</c> (<c>command</c> names which).</summary>
internal sealed record VersionStateResult(string Server, string ModelId, string Version, string State)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "model disable";
}

/// <summary>The --json result of <c>model delete</c>: the model and how many (destroyed) versions went with it.</summary>
internal sealed record ModelDeleteResult(string Server, string ModelId, int Versions)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "model delete";
}

/// <summary>A device registered for a licence, by the thumbprint of its public key.</summary>
internal sealed record DeviceEntry(string Thumbprint, string FirstSeen, string LastSeen);

/// <summary>The --json result of <c>licence devices</c>.</summary>
internal sealed record LicenceDevicesResult(string Server, string LicenceId, int MaxDevices, IReadOnlyList<DeviceEntry> Devices)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "licence devices";
}

/// <summary>The --json result of <c>licence remove-device</c>: the device removed.</summary>
internal sealed record LicenceRemoveDeviceResult(string Server, string LicenceId, DeviceEntry Device)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "licence remove-device";
}

/// <summary>The --json result of <c>licence edit</c>: the licence after the change, and the names of the members that changed.</summary>
internal sealed record LicenceEditResult(string Server, LicenceEntry Licence, IReadOnlyList<string> Changed)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "licence edit";
}

/// <summary>
/// The --json result of <c>attestation reverify</c>: how many accepted attestations were checked, and those rejected now
/// (thumbprint, evidence format, reason code).
/// </summary>
internal sealed record AttestationReverifyResult(string Server, int Checked, IReadOnlyList<ModelSeal.Protocol.RejectedAttestation> Rejected)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "attestation reverify";
}

/// <summary>The --json result of <c>master-key rotate</c>.</summary>
internal sealed record MasterKeyRotateResult(string Server, int MasterKeyVersion, int Rewrapped)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "master-key rotate";
}

/// <summary>One model's releases and refusals on one UTC day in <see cref="UsageResult"/>.</summary>
internal sealed record UsageEntry(string ModelId, string Day, long Releases, long Refusals, IReadOnlyDictionary<string, long> RefusalsByReason);

/// <summary>The --json result of <c>usage</c>.</summary>
internal sealed record UsageResult(string Server, string? Since, string? Until, IReadOnlyList<UsageEntry> Items)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "usage";
}

/// <summary>A user in the <c>user</c> results: a trusted issuer's subject an entitlement rule granted a key to.</summary>
internal sealed record UserEntry(long UserId, string Issuer, string Subject, string CreatedAt, string LastSeen, string? BlockedAt, long Devices);

/// <summary>A device registered for a user, with the entitlement rule it was registered under.</summary>
internal sealed record UserDeviceEntry(string Thumbprint, string Rule, string FirstSeen, string LastSeen);

/// <summary>The --json result of <c>user list</c>: a page of users; <c>next</c> is the <c>--after</c> of the next page (null at the end).</summary>
internal sealed record UserListResult(string Server, IReadOnlyList<UserEntry> Users, long? Next)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "user list";
}

/// <summary>The --json result of <c>user show</c>: the user, its devices and its latest key releases and refusals (audit records, newest first).</summary>
internal sealed record UserShowResult(string Server, UserEntry User, IReadOnlyList<UserDeviceEntry> Devices, IReadOnlyList<ModelSeal.Protocol.AuditItem> Releases)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "user show";
}

/// <summary>The --json result of <c>user block</c> and <c>user unblock</c> (<c>command</c> names which); <c>changed</c> is false when the user already was in that state.</summary>
internal sealed record UserBlockResult(string Server, UserEntry User, bool Changed)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "user block";
}

/// <summary>The --json result of <c>user remove-device</c>: the device removed.</summary>
internal sealed record UserRemoveDeviceResult(string Server, long UserId, UserDeviceEntry Device)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "user remove-device";
}

/// <summary>Source-generated (trim- and AOT-safe) serialization of the results, camelCase, one line.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(KeygenResult))]
[JsonSerializable(typeof(ModelAddResult))]
[JsonSerializable(typeof(ModelListResult))]
[JsonSerializable(typeof(LicenceAddResult))]
[JsonSerializable(typeof(LicenceRevokeResult))]
[JsonSerializable(typeof(LicenceListResult))]
[JsonSerializable(typeof(TokenIssueResult))]
[JsonSerializable(typeof(VersionStateResult))]
[JsonSerializable(typeof(ModelDeleteResult))]
[JsonSerializable(typeof(LicenceDevicesResult))]
[JsonSerializable(typeof(LicenceRemoveDeviceResult))]
[JsonSerializable(typeof(LicenceEditResult))]
[JsonSerializable(typeof(MasterKeyRotateResult))]
[JsonSerializable(typeof(AttestationReverifyResult))]
[JsonSerializable(typeof(UsageResult))]
[JsonSerializable(typeof(UserListResult))]
[JsonSerializable(typeof(UserShowResult))]
[JsonSerializable(typeof(UserBlockResult))]
[JsonSerializable(typeof(UserRemoveDeviceResult))]
[JsonSerializable(typeof(ServeResult))]
[JsonSerializable(typeof(AdminCredentialRotateResult))]
[JsonSerializable(typeof(MasterKeyMigrateResult))]
[JsonSerializable(typeof(DatabaseMigrateResult))]
[JsonSerializable(typeof(DemoResult))]
[JsonSerializable(typeof(EncryptResult))]
[JsonSerializable(typeof(DecryptResult))]
[JsonSerializable(typeof(VerifyResult))]
[JsonSerializable(typeof(InspectResult))]
internal sealed partial class CliJsonContext : JsonSerializerContext
{
    /// <summary>Writes <paramref name="value"/> as one line of JSON to standard output.</summary>
    public static void Write<T>(CliContext context, T value) => Write(context, value, Default);

    /// <summary>Writes <paramref name="value"/> as one line of JSON to standard output with the metadata of <paramref name="json"/>.</summary>
    public static void Write<T>(CliContext context, T value, JsonSerializerContext json)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(json);
        var typeInfo = (System.Text.Json.Serialization.Metadata.JsonTypeInfo<T>)json.GetTypeInfo(typeof(T))!;
        context.Out.WriteLine(JsonSerializer.Serialize(value, typeInfo));
    }
}
