namespace ModelSeal.Server.Storage;

/// <summary>
/// The master-key version that wraps new data keys, as the database records it (one row, id 1): written when the first
/// master key is created (or adopted, for a database of an older server) and in the transaction that completes a
/// rotation or a move to another provider. A higher version found in the token or in <c>master.keys</c> never wraps.
/// </summary>
internal sealed record MasterKeyRecord(int Version, DateTimeOffset UpdatedAt);

/// <summary>The recorded master-key version, read.</summary>
internal class MasterKeyReads(DbSession db)
{
    protected DbSession Db { get; } = db;

    /// <summary>The recorded version, or null when none is (a new database, or one of an older server).</summary>
    public MasterKeyRecord? Get() =>
        Db.List(r => new MasterKeyRecord(r.GetInt32(0), DbSession.Time(r.GetInt64(1))), "SELECT version, updated_at FROM master_key WHERE id = 1").FirstOrDefault();
}

/// <summary>The recorded master-key version, read and changed.</summary>
internal sealed class MasterKeyWrites(DbSession db) : MasterKeyReads(db)
{
    /// <summary>Records <paramref name="version"/> unless a version is recorded already; returns the recorded version.</summary>
    public int RecordFirst(int version, DateTimeOffset now)
    {
        Db.NonQuery(
            "INSERT INTO master_key (id, version, updated_at) VALUES (1, @v, @t) ON CONFLICT (id) DO NOTHING",
            ("@v", version), ("@t", DbSession.Seconds(now)));
        return Get()!.Version;
    }

    /// <summary>Records <paramref name="version"/> as the version that wraps new data keys (replacing any).</summary>
    public void Record(int version, DateTimeOffset now) =>
        Db.NonQuery(
            "INSERT INTO master_key (id, version, updated_at) VALUES (1, @v, @t) ON CONFLICT (id) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
            ("@v", version), ("@t", DbSession.Seconds(now)));
}
