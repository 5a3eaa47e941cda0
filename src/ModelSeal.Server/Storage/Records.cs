namespace ModelSeal.Server.Storage;

/// <summary>The state of a model version.</summary>
internal enum VersionState
{
    /// <summary>Its key is released.</summary>
    Active,

    /// <summary>No releases until it is enabled again.</summary>
    Disabled,

    /// <summary>Its wrapped key is erased: files sealed with it can never be opened again. Final.</summary>
    Destroyed,
}

/// <summary>The names of version states, as stored and as the protocol shows them.</summary>
internal static class VersionStates
{
    public const string Active = "active";
    public const string Disabled = "disabled";
    public const string Destroyed = "destroyed";

    public static string Name(this VersionState state) => state switch
    {
        VersionState.Active => Active,
        VersionState.Disabled => Disabled,
        _ => Destroyed,
    };

    public static VersionState Parse(string name) => name switch
    {
        Active => VersionState.Active,
        Disabled => VersionState.Disabled,
        Destroyed => VersionState.Destroyed,
        _ => throw new InvalidOperationException($"Unknown version state '{name}' in the database."),
    };
}

/// <summary>A model as stored.</summary>
internal sealed record ModelRecord(string ModelId, DateTimeOffset CreatedAt, IReadOnlyList<VersionRecord> Versions);

/// <summary>A model version as stored (without its wrapped key).</summary>
internal sealed record VersionRecord(long Sequence, string ModelId, string Version, string KeyId, VersionState State, DateTimeOffset CreatedAt);

/// <summary>A version's wrapped data key as stored (null when destroyed).</summary>
internal sealed record WrappedKey(long Sequence, string KeyId, VersionState State, int MasterKeyVersion, byte[]? Wrapped);

/// <summary>How a licence may be claimed: the only way a token is matched to it (docs/protocol.md section 2).</summary>
internal enum LicenceClaim
{
    /// <summary>
    /// Only with its credential: <c>POST /v1/token</c> exchanges it for one of the server's own tokens, whose
    /// <c>lic</c> claim names the licence. Every licence created before schema version 3 is one of these.
    /// </summary>
    Credential,

    /// <summary>Only by a token of one trusted external issuer whose <c>sub</c> is the licence's subject. It has no credential.</summary>
    IssuerSubject,
}

/// <summary>
/// A licence as stored (the credential only as its hash). <c>Claim</c> says how it may be claimed; <c>Issuer</c> is the
/// external issuer whose tokens claim it (<see cref="LicenceClaim.IssuerSubject"/>), null for a credential licence.
/// </summary>
internal sealed record LicenceRecord(
    string LicenceId,
    string Subject,
    IReadOnlyList<string> Models,
    DateTimeOffset? NotBefore,
    DateTimeOffset? ExpiresAt,
    int MaxDevices,
    DateTimeOffset CreatedAt,
    DateTimeOffset? RevokedAt,
    byte[] CredentialHash,
    LicenceClaim Claim = LicenceClaim.Credential,
    string? Issuer = null,
    string? AttestationPolicy = null)
{
    public bool Covers(string modelId) => Models.Contains("*", StringComparer.Ordinal) || Models.Contains(modelId, StringComparer.Ordinal);
}

/// <summary>A device registered for a licence.</summary>
internal sealed record DeviceRecord(string Thumbprint, DateTimeOffset FirstSeen, DateTimeOffset LastSeen);

/// <summary>
/// One audit record to append. Never holds key material. <paramref name="Attributes"/> carries what later features
/// add (the rule that decided, attestation results, …): each is a named string in the record's hash-chain encoding
/// (<see cref="AuditChain"/>, format 2), so new kinds of information never need a migration of old records.
/// </summary>
internal sealed record AuditEntry(
    string Event,
    string Outcome,
    string? Subject = null,
    string? LicenceId = null,
    string? ModelId = null,
    string? Version = null,
    string? KeyId = null,
    string? Device = null,
    string? Client = null,
    string? Issuer = null,
    IReadOnlyDictionary<string, string>? Attributes = null);

/// <summary>An audit record as stored, with its encoding format and its link in the hash chain (null only when tampered with).</summary>
internal sealed record AuditRecord(long Id, DateTimeOffset At, AuditEntry Entry, byte[]? Hash = null, int Format = AuditChain.CurrentFormat);

/// <summary>Audit event names (docs/protocol.md section 4).</summary>
internal static class AuditEvents
{
    public const string KeyReleased = "key.released";
    public const string KeyRefused = "key.refused";
    public const string ModelCreated = "model.created";
    public const string VersionCreated = "version.created";
    public const string VersionDisabled = "version.disabled";
    public const string VersionEnabled = "version.enabled";
    public const string VersionDestroyed = "version.destroyed";
    public const string LicenceCreated = "licence.created";
    public const string LicenceRevoked = "licence.revoked";
    public const string LicenceChanged = "licence.changed";
    public const string DeviceRemoved = "device.removed";
    public const string ModelDeleted = "model.deleted";
    public const string MasterKeyRotated = "master-key.rotated";
    public const string MasterKeyMigrated = "master-key.migrated";
    public const string DatabaseMigrated = "database.migrated";
    public const string AdminCredentialRotated = "admin.credential-rotated";
    public const string AttestationRejected = "device.attestation-rejected";
    public const string AttestationsReverified = "attestations.reverified";

    /// <summary>The subject of records written by offline operator commands (migrations).</summary>
    public const string Operator = "operator";
}

/// <summary>
/// Which audit records to read: each given member must match (times: <paramref name="Since"/> inclusive,
/// <paramref name="Until"/> exclusive); <paramref name="Events"/> null means any event.
/// </summary>
internal sealed record AuditFilter(string? LicenceId = null, string? ModelId = null, IReadOnlyList<string>? Events = null, DateTimeOffset? Since = null, DateTimeOffset? Until = null, string? Subject = null)
{
    /// <summary>No filter: every record.</summary>
    public static AuditFilter None { get; } = new();
}

/// <summary>The result of walking the audit hash chain.</summary>
/// <param name="Verified">True when every record chains to the one before it (and to the expected head, when one was given).</param>
/// <param name="Records">How many records were checked (all of them when verified).</param>
/// <param name="LastId">The id of the last record that chains correctly (null for none).</param>
/// <param name="LastHash">The hash of the last record that chains correctly (the genesis value for none).</param>
/// <param name="FirstBadId">The first record that does not chain (null when none, or when the log is shorter than expected).</param>
/// <param name="Reason">Why verification failed (null when verified).</param>
/// <param name="Checkpoint">The latest signed checkpoint (null when there is none).</param>
/// <param name="CheckpointVerified">The checkpoint's signature verifies and the log holds its record with its hash at its position.</param>
internal sealed record AuditVerification(bool Verified, long Records, long? LastId, byte[] LastHash, long? FirstBadId, string? Reason, AuditCheckpoint? Checkpoint = null, bool CheckpointVerified = false);

/// <summary>A model version row as stored, wrapped key included (moving a database only).</summary>
internal sealed record VersionRow(long Sequence, string ModelId, string Version, string KeyId, string State, int? MasterKeyVersion, byte[]? WrappedKey, long CreatedAt);

/// <summary>Every row of a store, in insertion order (<see cref="SnapshotQueries.Export"/>); times in Unix seconds.</summary>
internal sealed record StoreSnapshot(
    IReadOnlyList<(string ModelId, long CreatedAt)> Models,
    IReadOnlyList<VersionRow> Versions,
    IReadOnlyList<LicenceRecord> Licences,
    IReadOnlyList<(string LicenceId, string Thumbprint, long FirstSeen, long LastSeen)> Devices,
    IReadOnlyList<AuditRecord> Audit,
    AdminCredentialRecord? AdminCredential = null,
    MasterKeyRecord? MasterKey = null,
    IReadOnlyList<AuditCheckpoint>? AuditCheckpoints = null,
    IReadOnlyList<UserRow>? Users = null,
    IReadOnlyList<(long UserId, string Thumbprint, long FirstSeen, long LastSeen, string Rule)>? UserDevices = null,
    IReadOnlyList<DeviceAttestationRecord>? DeviceAttestations = null);

/// <summary>A user row as stored (moving a database only); times in Unix seconds.</summary>
internal sealed record UserRow(long UserId, string Issuer, string Subject, long CreatedAt, long LastSeen, long? BlockedAt);

/// <summary>
/// A device key's accepted attestation (docs/protocol.md section 2.6), keyed by the device key's thumbprint: the
/// format (<c>android-key</c> or <c>apple-appattest</c>), the policy it was accepted under, what re-verification needs
/// (Android: the chain, DER, and its challenge; Apple: the key id, the attested public key, the App ID, the environment
/// and the last counter), when it was verified and re-verified, and when and why re-verification rejected it.
/// <paramref name="DevicePublicKey"/> is the device key's 65-byte point.
/// </summary>
internal sealed record DeviceAttestationRecord(
    string Thumbprint,
    string Format,
    string Policy,
    byte[] DevicePublicKey,
    IReadOnlyList<byte[]>? Certificates,
    byte[]? Challenge,
    byte[]? KeyId,
    byte[]? AttestedKey,
    string? AppId,
    string? Environment,
    long Counter,
    DateTimeOffset VerifiedAt,
    DateTimeOffset? ReverifiedAt = null,
    DateTimeOffset? RejectedAt = null,
    string? RejectedReason = null);
