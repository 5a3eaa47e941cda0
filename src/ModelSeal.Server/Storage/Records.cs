namespace ModelSeal.Server.Storage;

/// <summary>States of a model version.</summary>
internal static class VersionStates
{
    public const string Active = "active";
    public const string Disabled = "disabled";
    public const string Destroyed = "destroyed";
}

/// <summary>A model as stored.</summary>
internal sealed record ModelRecord(string ModelId, DateTimeOffset CreatedAt, IReadOnlyList<VersionRecord> Versions);

/// <summary>A model version as stored (without its wrapped key).</summary>
internal sealed record VersionRecord(long Sequence, string ModelId, string Version, string KeyId, string State, DateTimeOffset CreatedAt);

/// <summary>A licence as stored (the credential only as its hash).</summary>
internal sealed record LicenceRecord(
    string LicenceId,
    string Subject,
    IReadOnlyList<string> Models,
    DateTimeOffset? NotBefore,
    DateTimeOffset? ExpiresAt,
    int MaxDevices,
    DateTimeOffset CreatedAt,
    DateTimeOffset? RevokedAt,
    byte[] CredentialHash)
{
    public bool Covers(string modelId) => Models.Contains("*", StringComparer.Ordinal) || Models.Contains(modelId, StringComparer.Ordinal);
}

/// <summary>A device registered for a licence.</summary>
internal sealed record DeviceRecord(string Thumbprint, DateTimeOffset FirstSeen, DateTimeOffset LastSeen);

/// <summary>One audit record to append. Never holds key material.</summary>
internal sealed record AuditEntry(
    string Event,
    string Outcome,
    string? Subject = null,
    string? LicenceId = null,
    string? ModelId = null,
    string? Version = null,
    string? KeyId = null,
    string? Device = null,
    string? Client = null);

/// <summary>An audit record as stored.</summary>
internal sealed record AuditRecord(long Id, DateTimeOffset At, AuditEntry Entry);

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
    public const string MasterKeyRotated = "master-key.rotated";
}
