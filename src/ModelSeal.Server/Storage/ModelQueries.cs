using System.Data.Common;

namespace ModelSeal.Server.Storage;

/// <summary>Models and their versions (wrapped keys included), read.</summary>
internal class ModelReads(DbSession db)
{
    private const string VersionColumns = "SELECT seq, model_id, version, key_id, state, created_at FROM model_versions";

    protected DbSession Db { get; } = db;

    public bool Exists(string modelId) => Db.Exists("SELECT 1 FROM models WHERE model_id = @m", ("@m", modelId));

    /// <summary>Every model with its versions, by id; versions in creation order.</summary>
    public List<ModelRecord> List()
    {
        ILookup<string, VersionRecord> versions = Db.List(ReadVersion, VersionColumns + " ORDER BY seq").ToLookup(v => v.ModelId, StringComparer.Ordinal);
        return Db.List(r => new ModelRecord(r.GetString(0), DbSession.Time(r.GetInt64(1)), versions[r.GetString(0)].ToList()), "SELECT model_id, created_at FROM models ORDER BY model_id");
    }

    public VersionRecord? FindVersion(string modelId, string version) =>
        Db.List(ReadVersion, VersionColumns + " WHERE model_id = @m AND version = @v", ("@m", modelId), ("@v", version)).FirstOrDefault();

    /// <summary>The active version created last.</summary>
    public VersionRecord? FindLatestActiveVersion(string modelId) =>
        Db.List(ReadVersion, VersionColumns + " WHERE model_id = @m AND state = 'active' ORDER BY seq DESC LIMIT 1", ("@m", modelId)).FirstOrDefault();

    /// <summary>A model's versions in creation order.</summary>
    public List<VersionRecord> Versions(string modelId) =>
        Db.List(ReadVersion, VersionColumns + " WHERE model_id = @m ORDER BY seq", ("@m", modelId));

    public List<string> VersionNames(string modelId) =>
        Db.List(r => r.GetString(0), "SELECT version FROM model_versions WHERE model_id = @m", ("@m", modelId));

    public bool KeyIdExists(string keyId) => Db.Exists("SELECT 1 FROM model_versions WHERE key_id = @k", ("@k", keyId));

    /// <summary>The state and wrapped key of a version.</summary>
    public WrappedKey ReadKey(long sequence) =>
        Db.List(ReadWrapped, "SELECT seq, key_id, state, master_key_version, wrapped_key FROM model_versions WHERE seq = @s", ("@s", sequence)).FirstOrDefault()
        ?? throw new InvalidOperationException("The model version disappeared.");

    /// <summary>Every wrapped key that still exists, in creation order.</summary>
    public List<WrappedKey> WrappedKeys() =>
        Db.List(ReadWrapped, "SELECT seq, key_id, state, master_key_version, wrapped_key FROM model_versions WHERE wrapped_key IS NOT NULL ORDER BY seq");

    public bool HasWrappedKeys() => Db.Exists("SELECT 1 FROM model_versions WHERE wrapped_key IS NOT NULL");

    /// <summary>A cheap query that proves the database answers.</summary>
    public long Count() => Db.Count("SELECT COUNT(*) FROM models");

    private static VersionRecord ReadVersion(DbDataReader r) =>
        new(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3), VersionStates.Parse(r.GetString(4)), DbSession.Time(r.GetInt64(5)));

    private static WrappedKey ReadWrapped(DbDataReader r) =>
        new(r.GetInt64(0), r.GetString(1), VersionStates.Parse(r.GetString(2)), r.IsDBNull(3) ? 0 : r.GetInt32(3), r.IsDBNull(4) ? null : (byte[])r.GetValue(4));
}

/// <summary>Models and their versions, read and changed.</summary>
internal sealed class ModelWrites(DbSession db, Store store) : ModelReads(db)
{
    public void Insert(string modelId, DateTimeOffset now) =>
        Db.NonQuery("INSERT INTO models (model_id, created_at) VALUES (@m, @t)", ("@m", modelId), ("@t", DbSession.Seconds(now)));

    public long InsertVersion(string modelId, string version, string keyId, int masterKeyVersion, byte[] wrappedKey, DateTimeOffset now)
    {
        using DbCommand command = Db.Command(
            "INSERT INTO model_versions (model_id, version, key_id, state, master_key_version, wrapped_key, created_at) VALUES (@m, @v, @k, 'active', @mk, @w, @t) RETURNING seq",
            ("@m", modelId), ("@v", version), ("@k", keyId), ("@mk", masterKeyVersion), ("@w", wrappedKey), ("@t", DbSession.Seconds(now)));
        return (long)command.ExecuteScalar()!;
    }

    /// <summary>Changes a version's state; destroying erases its wrapped key (as far as the database can: <see cref="Store.BeforeDestroy"/>).</summary>
    public void SetState(long sequence, VersionState state)
    {
        if (state == VersionState.Destroyed)
        {
            store.BeforeDestroy(Db);
            Db.NonQuery("UPDATE model_versions SET state = 'destroyed', wrapped_key = NULL, master_key_version = NULL WHERE seq = @s", ("@s", sequence));
        }
        else
        {
            Db.NonQuery("UPDATE model_versions SET state = @st WHERE seq = @s", ("@st", state.Name()), ("@s", sequence));
        }
    }

    /// <summary>Deletes a model and its version rows (the caller checked that every version is destroyed).</summary>
    public void Delete(string modelId)
    {
        Db.NonQuery("DELETE FROM model_versions WHERE model_id = @m", ("@m", modelId));
        Db.NonQuery("DELETE FROM models WHERE model_id = @m", ("@m", modelId));
    }

    public void UpdateWrappedKey(long sequence, int masterKeyVersion, byte[] wrappedKey) =>
        Db.NonQuery("UPDATE model_versions SET master_key_version = @mk, wrapped_key = @w WHERE seq = @s AND wrapped_key IS NOT NULL", ("@mk", masterKeyVersion), ("@w", wrappedKey), ("@s", sequence));
}
