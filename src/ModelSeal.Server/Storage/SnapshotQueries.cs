namespace ModelSeal.Server.Storage;

/// <summary>A whole database at once: export from one store and import into another (<c>modelseal database migrate</c>).</summary>
internal sealed class SnapshotQueries(DbSession db)
{
    /// <summary>Every row of every table, in insertion order, wrapped keys and audit hashes as stored.</summary>
    public StoreSnapshot Export() => new(
        db.List(r => (r.GetString(0), r.GetInt64(1)), "SELECT model_id, created_at FROM models ORDER BY model_id"),
        db.List(
            r => new VersionRow(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.IsDBNull(5) ? null : r.GetInt32(5), r.IsDBNull(6) ? null : (byte[])r.GetValue(6), r.GetInt64(7)),
            "SELECT seq, model_id, version, key_id, state, master_key_version, wrapped_key, created_at FROM model_versions ORDER BY seq"),
        db.List(LicenceReads.Read, LicenceReads.Columns + " ORDER BY rowid"),
        db.List(r => (r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3)), "SELECT licence_id, thumbprint, first_seen, last_seen FROM devices ORDER BY rowid"),
        new AuditReads(db).All().ToList(),
        new AdminCredentialReads(db).Get(),
        new MasterKeyReads(db).Get(),
        new AuditReads(db).Checkpoints(),
        db.List(
            r => new UserRow(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetInt64(3), r.GetInt64(4), r.IsDBNull(5) ? null : r.GetInt64(5)),
            "SELECT user_id, issuer, subject, created_at, last_seen, blocked_at FROM users ORDER BY user_id"),
        db.List(
            r => (r.GetInt64(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3), r.GetString(4)),
            "SELECT user_id, thumbprint, first_seen, last_seen, rule FROM user_devices ORDER BY user_id, first_seen, thumbprint"),
        new AttestationReads(db).All());

    /// <summary>
    /// Inserts a snapshot into empty tables, keeping version sequence numbers, insertion order, audit ids, formats and
    /// hashes; <paramref name="identityInsert"/> is what lets an explicit value into an identity column.
    /// </summary>
    public void Import(StoreSnapshot snapshot, string identityInsert)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        foreach ((string modelId, long createdAt) in snapshot.Models)
        {
            db.NonQuery("INSERT INTO models (model_id, created_at) VALUES (@m, @t)", ("@m", modelId), ("@t", createdAt));
        }

        foreach (VersionRow v in snapshot.Versions)
        {
            db.NonQuery(
                $"INSERT INTO model_versions (seq, model_id, version, key_id, state, master_key_version, wrapped_key, created_at) {identityInsert} VALUES (@s, @m, @v, @k, @st, @mk, @w, @t)",
                ("@s", v.Sequence), ("@m", v.ModelId), ("@v", v.Version), ("@k", v.KeyId), ("@st", v.State), ("@mk", v.MasterKeyVersion), ("@w", v.WrappedKey), ("@t", v.CreatedAt));
        }

        var licences = new LicenceWrites(db);
        foreach (LicenceRecord licence in snapshot.Licences)
        {
            licences.Insert(licence);
        }

        foreach ((string licenceId, string thumbprint, long firstSeen, long lastSeen) in snapshot.Devices)
        {
            db.NonQuery("INSERT INTO devices (licence_id, thumbprint, first_seen, last_seen) VALUES (@l, @d, @f, @t)", ("@l", licenceId), ("@d", thumbprint), ("@f", firstSeen), ("@t", lastSeen));
        }

        // Users keep their ids (the admin API and 'modelseal user' name them by id), their devices the rule that granted each.
        foreach (UserRow user in snapshot.Users ?? [])
        {
            db.NonQuery(
                $"INSERT INTO users (user_id, issuer, subject, created_at, last_seen, blocked_at) {identityInsert} VALUES (@u, @i, @s, @c, @l, @b)",
                ("@u", user.UserId), ("@i", user.Issuer), ("@s", user.Subject), ("@c", user.CreatedAt), ("@l", user.LastSeen), ("@b", user.BlockedAt));
        }

        foreach ((long userId, string thumbprint, long firstSeen, long lastSeen, string rule) in snapshot.UserDevices ?? [])
        {
            db.NonQuery(
                "INSERT INTO user_devices (user_id, thumbprint, first_seen, last_seen, rule) VALUES (@u, @d, @f, @t, @r)",
                ("@u", userId), ("@d", thumbprint), ("@f", firstSeen), ("@t", lastSeen), ("@r", rule));
        }

        // Accepted attestations move (issued challenges do not: they are short-lived, and clients ask again).
        var attestations = new AttestationWrites(db);
        foreach (DeviceAttestationRecord attestation in snapshot.DeviceAttestations ?? [])
        {
            attestations.Insert(attestation);
        }

        var audit = new AuditWrites(db);
        foreach (AuditRecord record in snapshot.Audit)
        {
            audit.Insert(record);
        }

        // The signed checkpoints move as they are: they sign the records, which keep their ids and hashes.
        foreach (AuditCheckpoint checkpoint in snapshot.AuditCheckpoints ?? [])
        {
            audit.InsertCheckpoint(checkpoint);
        }

        // The admin credential moves with the database (its hash and epoch): the same credential and tokens keep working.
        if (snapshot.AdminCredential is { } admin)
        {
            new AdminCredentialWrites(db).Import(admin);
        }

        // The recorded master-key version moves too: the master keys do not change, nor does the one that wraps.
        if (snapshot.MasterKey is { } masterKey)
        {
            new MasterKeyWrites(db).Record(masterKey.Version, masterKey.UpdatedAt);
        }
    }

    /// <summary>True when no table holds a row.</summary>
    public bool IsEmpty() =>
        !db.Exists("SELECT 1 FROM models") && !db.Exists("SELECT 1 FROM licences") && !db.Exists("SELECT 1 FROM users") && !db.Exists("SELECT 1 FROM audit");
}
