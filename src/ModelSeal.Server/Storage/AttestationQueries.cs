using System.Data.Common;
using System.Security.Cryptography;
using System.Text.Json;

namespace ModelSeal.Server.Storage;

/// <summary>Accepted device attestations and issued attestation challenges, read.</summary>
internal class AttestationReads(DbSession db)
{
    internal const string Columns = "SELECT thumbprint, format, policy, device_key, certificates, challenge, key_id, attested_key, app_id, environment, counter, verified_at, reverified_at, rejected_at, rejected_reason FROM device_attestations";

    protected DbSession Db { get; } = db;

    /// <summary>The accepted attestation of a device key, or null.</summary>
    public DeviceAttestationRecord? Find(string thumbprint) => Db.List(Read, Columns + " WHERE thumbprint = @d", ("@d", thumbprint)).FirstOrDefault();

    /// <summary>Every accepted attestation of <paramref name="format"/> that re-verification has not rejected, by thumbprint.</summary>
    public List<DeviceAttestationRecord> ListAccepted(string format) =>
        Db.List(Read, Columns + " WHERE format = @f AND rejected_at IS NULL ORDER BY thumbprint", ("@f", format));

    /// <summary>The challenges stored (issued, not used, not purged).</summary>
    public long ChallengeCount() => Db.Count("SELECT COUNT(*) FROM attestation_challenges");

    /// <summary>Every accepted attestation, by thumbprint (moving a database).</summary>
    public List<DeviceAttestationRecord> All() => Db.List(Read, Columns + " ORDER BY thumbprint");

    /// <summary>The stored form of a challenge: hex of its SHA-256 (the table never holds a usable challenge).</summary>
    internal static string ChallengeKey(ReadOnlySpan<byte> challenge) => Convert.ToHexStringLower(SHA256.HashData(challenge));

    internal static DeviceAttestationRecord Read(DbDataReader r) => new(
        r.GetString(0),
        r.GetString(1),
        r.GetString(2),
        (byte[])r.GetValue(3),
        r.IsDBNull(4) ? null : JsonSerializer.Deserialize<byte[][]>(r.GetString(4)),
        r.IsDBNull(5) ? null : (byte[])r.GetValue(5),
        r.IsDBNull(6) ? null : (byte[])r.GetValue(6),
        r.IsDBNull(7) ? null : (byte[])r.GetValue(7),
        DbSession.NullableString(r, 8),
        DbSession.NullableString(r, 9),
        r.GetInt64(10),
        DbSession.Time(r.GetInt64(11)),
        r.IsDBNull(12) ? null : DbSession.Time(r.GetInt64(12)),
        r.IsDBNull(13) ? null : DbSession.Time(r.GetInt64(13)),
        DbSession.NullableString(r, 14));
}

/// <summary>Accepted device attestations and attestation challenges, read and changed.</summary>
internal sealed class AttestationWrites(DbSession db) : AttestationReads(db)
{
    /// <summary>Stores a device key's accepted attestation, replacing one it had (a new attestation of the same key).</summary>
    public void Accept(DeviceAttestationRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        Db.NonQuery("DELETE FROM device_attestations WHERE thumbprint = @d", ("@d", record.Thumbprint));
        Insert(record);
    }

    /// <summary>Inserts a row as it is (also when moving a database).</summary>
    public void Insert(DeviceAttestationRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        Db.NonQuery(
            "INSERT INTO device_attestations (thumbprint, format, policy, device_key, certificates, challenge, key_id, attested_key, app_id, environment, counter, verified_at, reverified_at, rejected_at, rejected_reason) " +
            "VALUES (@d, @f, @p, @dk, @c, @ch, @k, @ak, @a, @e, @n, @v, @rv, @rj, @rr)",
            ("@d", record.Thumbprint),
            ("@f", record.Format),
            ("@p", record.Policy),
            ("@dk", record.DevicePublicKey),
            ("@c", record.Certificates is null ? null : JsonSerializer.Serialize(record.Certificates)),
            ("@ch", record.Challenge),
            ("@k", record.KeyId),
            ("@ak", record.AttestedKey),
            ("@a", record.AppId),
            ("@e", record.Environment),
            ("@n", record.Counter),
            ("@v", DbSession.Seconds(record.VerifiedAt)),
            ("@rv", record.ReverifiedAt is { } rv ? DbSession.Seconds(rv) : null),
            ("@rj", record.RejectedAt is { } rj ? DbSession.Seconds(rj) : null),
            ("@rr", record.RejectedReason));
    }

    /// <summary>Stores an App Attest key's new counter and the time of the assertion that carried it.</summary>
    public void Reasserted(string thumbprint, long counter, DateTimeOffset now) =>
        Db.NonQuery("UPDATE device_attestations SET counter = @n, reverified_at = @t WHERE thumbprint = @d", ("@n", counter), ("@t", DbSession.Seconds(now)), ("@d", thumbprint));

    /// <summary>Records that re-verification still accepts an attestation.</summary>
    public void Reverified(string thumbprint, DateTimeOffset now) =>
        Db.NonQuery("UPDATE device_attestations SET reverified_at = @t WHERE thumbprint = @d AND rejected_at IS NULL", ("@t", DbSession.Seconds(now)), ("@d", thumbprint));

    /// <summary>Marks an accepted attestation rejected with its reason; false when it was rejected already (or is gone).</summary>
    public bool Reject(string thumbprint, string reason, DateTimeOffset now)
    {
        using DbCommand command = Db.Command(
            "UPDATE device_attestations SET rejected_at = @t, rejected_reason = @r WHERE thumbprint = @d AND rejected_at IS NULL",
            ("@t", DbSession.Seconds(now)), ("@r", reason), ("@d", thumbprint));
        return command.ExecuteNonQuery() > 0;
    }

    /// <summary>Stores a challenge issued to (issuer, subject), after deleting every expired one (the table stays bounded).</summary>
    public void IssueChallenge(ReadOnlySpan<byte> challenge, string issuer, string subject, DateTimeOffset expiresAt, DateTimeOffset now)
    {
        PurgeChallenges(now);
        Db.NonQuery(
            "INSERT INTO attestation_challenges (challenge, issuer, subject, expires_at) VALUES (@c, @i, @s, @x)",
            ("@c", ChallengeKey(challenge)), ("@i", issuer), ("@s", subject), ("@x", DbSession.Seconds(expiresAt)));
    }

    /// <summary>
    /// Uses up a challenge: deletes it when it was issued to (issuer, subject) and has not expired, and says whether it
    /// did. A challenge is used at most once, also by concurrent requests (they serialise on the write transaction).
    /// </summary>
    public bool ConsumeChallenge(ReadOnlySpan<byte> challenge, string issuer, string subject, DateTimeOffset now)
    {
        using DbCommand command = Db.Command(
            "DELETE FROM attestation_challenges WHERE challenge = @c AND issuer = @i AND subject = @s AND expires_at > @t",
            ("@c", ChallengeKey(challenge)), ("@i", issuer), ("@s", subject), ("@t", DbSession.Seconds(now)));
        return command.ExecuteNonQuery() > 0;
    }

    /// <summary>Deletes every expired challenge; returns how many.</summary>
    public int PurgeChallenges(DateTimeOffset now)
    {
        using DbCommand command = Db.Command("DELETE FROM attestation_challenges WHERE expires_at <= @t", ("@t", DbSession.Seconds(now)));
        return command.ExecuteNonQuery();
    }
}
