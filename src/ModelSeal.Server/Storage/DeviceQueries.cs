namespace ModelSeal.Server.Storage;

/// <summary>The devices registered per licence, read.</summary>
internal class DeviceReads(DbSession db)
{
    protected DbSession Db { get; } = db;

    /// <summary>The device's last-seen time in Unix seconds; null when it is not registered for the licence.</summary>
    public long? LastSeen(string licenceId, string thumbprint) =>
        Db.List(r => (long?)r.GetInt64(0), "SELECT last_seen FROM devices WHERE licence_id = @l AND thumbprint = @d", ("@l", licenceId), ("@d", thumbprint)).FirstOrDefault();

    public long Count(string licenceId) => Db.Count("SELECT COUNT(*) FROM devices WHERE licence_id = @l", ("@l", licenceId));

    /// <summary>A licence's devices in registration order.</summary>
    public List<DeviceRecord> List(string licenceId) =>
        Db.List(ReadDevice, "SELECT thumbprint, first_seen, last_seen FROM devices WHERE licence_id = @l ORDER BY first_seen, rowid", ("@l", licenceId));

    /// <summary>One device of a licence, or null.</summary>
    public DeviceRecord? Get(string licenceId, string thumbprint) =>
        Db.List(ReadDevice, "SELECT thumbprint, first_seen, last_seen FROM devices WHERE licence_id = @l AND thumbprint = @d", ("@l", licenceId), ("@d", thumbprint)).FirstOrDefault();

    private static DeviceRecord ReadDevice(System.Data.Common.DbDataReader r) => new(r.GetString(0), DbSession.Time(r.GetInt64(1)), DbSession.Time(r.GetInt64(2)));
}

/// <summary>The devices registered per licence, read and changed.</summary>
internal sealed class DeviceWrites(DbSession db) : DeviceReads(db)
{
    public void Insert(string licenceId, string thumbprint, DateTimeOffset now) =>
        Db.NonQuery("INSERT INTO devices (licence_id, thumbprint, first_seen, last_seen) VALUES (@l, @d, @t, @t)", ("@l", licenceId), ("@d", thumbprint), ("@t", DbSession.Seconds(now)));

    /// <summary>Removes a device, freeing its slot; false when the licence has no such device.</summary>
    public bool Delete(string licenceId, string thumbprint)
    {
        using System.Data.Common.DbCommand command = Db.Command("DELETE FROM devices WHERE licence_id = @l AND thumbprint = @d", ("@l", licenceId), ("@d", thumbprint));
        return command.ExecuteNonQuery() > 0;
    }

    /// <summary>Moves a device's last-seen time forward (never back).</summary>
    public void Touch(string licenceId, string thumbprint, DateTimeOffset now) =>
        Db.NonQuery("UPDATE devices SET last_seen = @t WHERE licence_id = @l AND thumbprint = @d AND last_seen < @t", ("@l", licenceId), ("@d", thumbprint), ("@t", DbSession.Seconds(now)));
}
