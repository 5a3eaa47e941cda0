namespace ModelSeal.Server.Storage;

/// <summary>
/// The admin credential as stored: its SHA-256 (as for licence credentials; the credential itself is
/// never stored) and its epoch, which starts at 1 and grows by one at each rotation. Every admin token carries the
/// epoch it was issued in and is accepted only while that is the current one.
/// </summary>
internal sealed record AdminCredentialRecord(byte[] Hash, long Epoch, DateTimeOffset UpdatedAt);

/// <summary>The admin credential (one row, id 1), read.</summary>
internal class AdminCredentialReads(DbSession db)
{
    protected DbSession Db { get; } = db;

    /// <summary>The stored admin credential, or null before the first start.</summary>
    public AdminCredentialRecord? Get() =>
        Db.List(r => new AdminCredentialRecord((byte[])r.GetValue(0), r.GetInt64(1), DbSession.Time(r.GetInt64(2))), "SELECT credential_hash, epoch, updated_at FROM admin_credential WHERE id = 1").FirstOrDefault();
}

/// <summary>The admin credential, read and changed.</summary>
internal sealed class AdminCredentialWrites(DbSession db) : AdminCredentialReads(db)
{
    /// <summary>Stores the first admin credential (epoch 1) unless one is stored already; true when this one was stored.</summary>
    public bool InsertFirst(byte[] hash, DateTimeOffset now)
    {
        using var command = Db.Command(
            "INSERT INTO admin_credential (id, credential_hash, epoch, updated_at) VALUES (1, @h, 1, @t) ON CONFLICT (id) DO NOTHING",
            ("@h", hash), ("@t", DbSession.Seconds(now)));
        return command.ExecuteNonQuery() == 1;
    }

    /// <summary>Replaces the admin credential's hash and moves to the next epoch; returns the new epoch.</summary>
    public long Rotate(byte[] hash, DateTimeOffset now)
    {
        long epoch = (Get()?.Epoch ?? 0) + 1;
        Db.NonQuery(
            "INSERT INTO admin_credential (id, credential_hash, epoch, updated_at) VALUES (1, @h, @e, @t) ON CONFLICT (id) DO UPDATE SET credential_hash = excluded.credential_hash, epoch = excluded.epoch, updated_at = excluded.updated_at",
            ("@h", hash), ("@e", epoch), ("@t", DbSession.Seconds(now)));
        return epoch;
    }

    /// <summary>Puts a copied admin credential in place (moving a database), replacing any.</summary>
    public void Import(AdminCredentialRecord record)
    {
        Db.NonQuery("DELETE FROM admin_credential");
        Db.NonQuery(
            "INSERT INTO admin_credential (id, credential_hash, epoch, updated_at) VALUES (1, @h, @e, @t)",
            ("@h", record.Hash), ("@e", record.Epoch), ("@t", DbSession.Seconds(record.UpdatedAt)));
    }
}
