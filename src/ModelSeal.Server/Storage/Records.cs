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

/// <summary>An audit record as stored, with its link in the hash chain (null only when tampered with).</summary>
internal sealed record AuditRecord(long Id, DateTimeOffset At, AuditEntry Entry, byte[]? Hash = null);

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
    public const string MasterKeyMigrated = "master-key.migrated";
    public const string DatabaseMigrated = "database.migrated";
}

/// <summary>
/// The audit hash chain (docs/protocol.md section 4.1): <c>hash = SHA-256(previous hash || encoding of the record)</c>,
/// the first record chaining to 32 zero bytes.
/// </summary>
internal static class AuditChain
{
    /// <summary>The size of a link in bytes.</summary>
    public const int HashSize = 32;

    /// <summary>The value the first record chains to.</summary>
    public static byte[] Genesis => new byte[HashSize];

    /// <summary>The hash of a record with <paramref name="id"/>, <paramref name="at"/> (Unix seconds) and its fields, after <paramref name="previous"/>.</summary>
    public static byte[] Link(ReadOnlySpan<byte> previous, long id, long at, AuditEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        hash.AppendData(previous);
        hash.AppendData(Encode(id, at, entry));
        return hash.GetHashAndReset();
    }

    /// <summary>
    /// The canonical encoding: <c>u64(id) || i64(at) || field(event) || field(subject) || field(licenceId) ||
    /// field(modelId) || field(version) || field(keyId) || field(device) || field(client) || field(outcome)</c>, big
    /// endian; <c>field(null) = 0x00</c>, <c>field(s) = 0x01 || u32(UTF-8 length of s) || UTF-8 bytes of s</c>.
    /// </summary>
    public static byte[] Encode(long id, long at, AuditEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        string?[] fields = [entry.Event, entry.Subject, entry.LicenceId, entry.ModelId, entry.Version, entry.KeyId, entry.Device, entry.Client, entry.Outcome];
        int length = 16;
        foreach (string? field in fields)
        {
            length += field is null ? 1 : 5 + System.Text.Encoding.UTF8.GetByteCount(field);
        }

        byte[] bytes = new byte[length];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(bytes, id);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(8), at);
        int offset = 16;
        foreach (string? field in fields)
        {
            if (field is null)
            {
                bytes[offset++] = 0;
                continue;
            }

            bytes[offset] = 1;
            int written = System.Text.Encoding.UTF8.GetBytes(field, bytes.AsSpan(offset + 5));
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(offset + 1), (uint)written);
            offset += 5 + written;
        }

        return bytes;
    }
}

/// <summary>The result of walking the audit hash chain.</summary>
/// <param name="Verified">True when every record chains to the one before it (and to the expected head, when one was given).</param>
/// <param name="Records">How many records were checked (all of them when verified).</param>
/// <param name="LastId">The id of the last record that chains correctly (null for none).</param>
/// <param name="LastHash">The hash of the last record that chains correctly (the genesis value for none).</param>
/// <param name="FirstBadId">The first record that does not chain (null when none, or when the log is shorter than expected).</param>
/// <param name="Reason">Why verification failed (null when verified).</param>
internal sealed record AuditVerification(bool Verified, long Records, long? LastId, byte[] LastHash, long? FirstBadId, string? Reason);

/// <summary>A model version row as stored, wrapped key included (moving a database only).</summary>
internal sealed record VersionRow(long Sequence, string ModelId, string Version, string KeyId, string State, int? MasterKeyVersion, byte[]? WrappedKey, long CreatedAt);

/// <summary>Every row of a store, in insertion order (<see cref="Store.Session.Export"/>); times in Unix seconds.</summary>
internal sealed record StoreSnapshot(
    IReadOnlyList<(string ModelId, long CreatedAt)> Models,
    IReadOnlyList<VersionRow> Versions,
    IReadOnlyList<LicenceRecord> Licences,
    IReadOnlyList<(string LicenceId, string Thumbprint, long FirstSeen, long LastSeen)> Devices,
    IReadOnlyList<AuditRecord> Audit);
