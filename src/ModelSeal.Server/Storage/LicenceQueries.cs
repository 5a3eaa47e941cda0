using System.Data.Common;
using System.Text.Json;

namespace ModelSeal.Server.Storage;

/// <summary>Licences, read.</summary>
internal class LicenceReads(DbSession db)
{
    internal const string Columns = "SELECT licence_id, subject, models, not_before, expires_at, max_devices, created_at, revoked_at, credential_hash, claim, issuer, attestation_policy FROM licences";

    internal const string ClaimCredential = "credential";
    internal const string ClaimIssuerSubject = "issuer-subject";

    protected DbSession Db { get; } = db;

    public LicenceRecord? Get(string licenceId) => Db.List(Read, Columns + " WHERE licence_id = @id", ("@id", licenceId)).FirstOrDefault();

    /// <summary>The newest licence claimed by (<paramref name="issuer"/>, <paramref name="subject"/>).</summary>
    public LicenceRecord? FindByIssuerSubject(string issuer, string subject) =>
        Db.List(Read, Columns + " WHERE claim = 'issuer-subject' AND issuer = @i AND subject = @s ORDER BY created_at DESC, rowid DESC LIMIT 1", ("@i", issuer), ("@s", subject)).FirstOrDefault();

    /// <summary>Every licence in creation order.</summary>
    public List<LicenceRecord> List() => Db.List(Read, Columns + " ORDER BY created_at, rowid");

    /// <summary>True when the licence exists and is not revoked.</summary>
    public bool IsActive(string licenceId) => Db.Exists("SELECT 1 FROM licences WHERE licence_id = @id AND revoked_at IS NULL", ("@id", licenceId));

    internal static LicenceRecord Read(DbDataReader r) => new(
        r.GetString(0),
        r.GetString(1),
        JsonSerializer.Deserialize<string[]>(r.GetString(2)) ?? [],
        r.IsDBNull(3) ? null : DbSession.Time(r.GetInt64(3)),
        r.IsDBNull(4) ? null : DbSession.Time(r.GetInt64(4)),
        r.GetInt32(5),
        DbSession.Time(r.GetInt64(6)),
        r.IsDBNull(7) ? null : DbSession.Time(r.GetInt64(7)),
        (byte[])r.GetValue(8),
        r.GetString(9) switch
        {
            ClaimCredential => LicenceClaim.Credential,
            ClaimIssuerSubject => LicenceClaim.IssuerSubject,
            string other => throw new InvalidOperationException($"Unknown licence claim '{other}' in the database."),
        },
        DbSession.NullableString(r, 10),
        DbSession.NullableString(r, 11));
}

/// <summary>Licences, read and changed.</summary>
internal sealed class LicenceWrites(DbSession db) : LicenceReads(db)
{
    public void Insert(LicenceRecord licence) =>
        Db.NonQuery(
            "INSERT INTO licences (licence_id, subject, models, not_before, expires_at, max_devices, created_at, revoked_at, credential_hash, claim, issuer, attestation_policy) VALUES (@id, @s, @m, @nb, @ex, @max, @t, @r, @h, @c, @i, @ap)",
            ("@id", licence.LicenceId),
            ("@s", licence.Subject),
            ("@m", JsonSerializer.Serialize(licence.Models)),
            ("@nb", licence.NotBefore is { } nb ? DbSession.Seconds(nb) : null),
            ("@ex", licence.ExpiresAt is { } ex ? DbSession.Seconds(ex) : null),
            ("@max", licence.MaxDevices),
            ("@t", DbSession.Seconds(licence.CreatedAt)),
            ("@r", licence.RevokedAt is { } r ? DbSession.Seconds(r) : null),
            ("@h", licence.CredentialHash),
            ("@c", licence.Claim == LicenceClaim.Credential ? ClaimCredential : ClaimIssuerSubject),
            ("@i", licence.Issuer),
            ("@ap", licence.AttestationPolicy));

    /// <summary>Sets a licence's end of validity, device limit, models and attestation policy (the other columns never change).</summary>
    public void Update(string licenceId, DateTimeOffset? expiresAt, int maxDevices, IReadOnlyList<string> models, string? attestationPolicy) =>
        Db.NonQuery(
            "UPDATE licences SET expires_at = @ex, max_devices = @max, models = @m, attestation_policy = @ap WHERE licence_id = @id",
            ("@ex", expiresAt is { } ex ? DbSession.Seconds(ex) : null),
            ("@max", maxDevices),
            ("@m", JsonSerializer.Serialize(models)),
            ("@ap", attestationPolicy),
            ("@id", licenceId));

    public void Revoke(string licenceId, DateTimeOffset now) =>
        Db.NonQuery("UPDATE licences SET revoked_at = @t WHERE licence_id = @id AND revoked_at IS NULL", ("@t", DbSession.Seconds(now)), ("@id", licenceId));
}
