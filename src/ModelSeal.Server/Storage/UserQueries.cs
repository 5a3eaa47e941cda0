using System.Runtime.InteropServices;
using System.Data.Common;

namespace ModelSeal.Server.Storage;

/// <summary>
/// A user as stored: a trusted issuer's subject (<c>iss</c>, <c>sub</c>) that was granted a key under an entitlement
/// rule; <c>Devices</c> is how many devices are registered for it.
/// </summary>
internal sealed record UserRecord(long UserId, string Issuer, string Subject, DateTimeOffset CreatedAt, DateTimeOffset LastSeen, DateTimeOffset? BlockedAt, long Devices);

/// <summary>A device registered for a user, with the rule it was registered under.</summary>
internal sealed record UserDeviceRecord(string Thumbprint, DateTimeOffset FirstSeen, DateTimeOffset LastSeen, string Rule);

/// <summary>
/// What a rule's release transaction needs of (issuer, subject)'s user and one device, in one query: the user's id, its
/// block and last-seen time, and the device's last-seen time (null when the device is not registered for the user).
/// </summary>
internal sealed record UserDeviceState(long UserId, DateTimeOffset? BlockedAt, long LastSeen, long? DeviceLastSeen);

/// <summary>The users and their devices (schema version 7), read.</summary>
internal class UserReads(DbSession db)
{
    private const string Columns = "SELECT u.user_id, u.issuer, u.subject, u.created_at, u.last_seen, u.blocked_at, (SELECT COUNT(*) FROM user_devices d WHERE d.user_id = u.user_id) FROM users u";

    protected DbSession Db { get; } = db;

    public UserRecord? Get(long userId) => Db.List(Read, Columns + " WHERE u.user_id = @u", ("@u", userId)).FirstOrDefault();

    /// <summary>When (issuer, subject)'s user was blocked; null when it is not blocked or does not exist (the release rules' question).</summary>
    public DateTimeOffset? BlockedAt(string issuer, string subject) =>
        Db.List(r => r.IsDBNull(0) ? (DateTimeOffset?)null : DbSession.Time(r.GetInt64(0)), "SELECT blocked_at FROM users WHERE issuer = @i AND subject = @s", ("@i", issuer), ("@s", subject)).FirstOrDefault();

    /// <summary>The user (issuer, subject) and its device <paramref name="thumbprint"/> as a release sees them; null when there is no such user.</summary>
    public UserDeviceState? FindWithDevice(string issuer, string subject, string thumbprint) =>
        Db.List(
            r => new UserDeviceState(r.GetInt64(0), r.IsDBNull(1) ? null : DbSession.Time(r.GetInt64(1)), r.GetInt64(2), r.IsDBNull(3) ? null : r.GetInt64(3)),
            "SELECT u.user_id, u.blocked_at, u.last_seen, d.last_seen FROM users u LEFT JOIN user_devices d ON d.user_id = u.user_id AND d.thumbprint = @d WHERE u.issuer = @i AND u.subject = @s",
            ("@i", issuer), ("@s", subject), ("@d", thumbprint)).FirstOrDefault();

    /// <summary>
    /// Up to <paramref name="limit"/> users after id <paramref name="after"/> in id order, only those of
    /// <paramref name="issuer"/> and with <paramref name="subject"/> when given.
    /// </summary>
    public List<UserRecord> List(long after, int limit, string? issuer, string? subject)
    {
        var parameters = new List<(string Name, object? Value)> { ("@a", after), ("@n", limit) };
        string where = " WHERE u.user_id > @a";
        if (issuer is not null)
        {
            where += " AND u.issuer = @i";
            parameters.Add(("@i", issuer));
        }

        if (subject is not null)
        {
            where += " AND u.subject = @s";
            parameters.Add(("@s", subject));
        }

        return Db.List(Read, Columns + where + " ORDER BY u.user_id LIMIT @n", CollectionsMarshal.AsSpan(parameters));
    }

    public long DeviceCount(long userId) => Db.Count("SELECT COUNT(*) FROM user_devices WHERE user_id = @u", ("@u", userId));

    /// <summary>A user's devices in registration order.</summary>
    public List<UserDeviceRecord> Devices(long userId) =>
        Db.List(ReadDevice, "SELECT thumbprint, first_seen, last_seen, rule FROM user_devices WHERE user_id = @u ORDER BY first_seen, thumbprint", ("@u", userId));

    public UserDeviceRecord? Device(long userId, string thumbprint) =>
        Db.List(ReadDevice, "SELECT thumbprint, first_seen, last_seen, rule FROM user_devices WHERE user_id = @u AND thumbprint = @d", ("@u", userId), ("@d", thumbprint)).FirstOrDefault();

    private static UserRecord Read(DbDataReader r) => new(
        r.GetInt64(0), r.GetString(1), r.GetString(2), DbSession.Time(r.GetInt64(3)), DbSession.Time(r.GetInt64(4)),
        r.IsDBNull(5) ? null : DbSession.Time(r.GetInt64(5)), r.GetInt64(6));

    private static UserDeviceRecord ReadDevice(DbDataReader r) => new(r.GetString(0), DbSession.Time(r.GetInt64(1)), DbSession.Time(r.GetInt64(2)), r.GetString(3));
}

/// <summary>The users and their devices, read and changed (inside the writer's transaction).</summary>
internal sealed class UserWrites(DbSession db) : UserReads(db)
{
    /// <summary>The user (issuer, subject), created now when it does not exist; its id.</summary>
    public long GetOrCreate(string issuer, string subject, DateTimeOffset now)
    {
        Db.NonQuery(
            "INSERT INTO users (issuer, subject, created_at, last_seen) VALUES (@i, @s, @t, @t) ON CONFLICT (issuer, subject) DO NOTHING",
            ("@i", issuer), ("@s", subject), ("@t", DbSession.Seconds(now)));
        return Db.Count("SELECT user_id FROM users WHERE issuer = @i AND subject = @s", ("@i", issuer), ("@s", subject));
    }

    /// <summary>Moves a user's last-seen time forward (never back).</summary>
    public void Touch(long userId, DateTimeOffset now) =>
        Db.NonQuery("UPDATE users SET last_seen = @t WHERE user_id = @u AND last_seen < @t", ("@u", userId), ("@t", DbSession.Seconds(now)));

    /// <summary>Sets (a time) or clears (null) the user's block.</summary>
    public void SetBlocked(long userId, DateTimeOffset? at) =>
        Db.NonQuery("UPDATE users SET blocked_at = @b WHERE user_id = @u", ("@u", userId), ("@b", at is { } t ? DbSession.Seconds(t) : null));

    public void InsertDevice(long userId, string thumbprint, string rule, DateTimeOffset now) =>
        Db.NonQuery(
            "INSERT INTO user_devices (user_id, thumbprint, first_seen, last_seen, rule) VALUES (@u, @d, @t, @t, @r)",
            ("@u", userId), ("@d", thumbprint), ("@t", DbSession.Seconds(now)), ("@r", rule));

    public void TouchDevice(long userId, string thumbprint, DateTimeOffset now) =>
        Db.NonQuery(
            "UPDATE user_devices SET last_seen = @t WHERE user_id = @u AND thumbprint = @d AND last_seen < @t",
            ("@u", userId), ("@d", thumbprint), ("@t", DbSession.Seconds(now)));

    /// <summary>Removes a user's device, freeing its slot; false when the user has no such device.</summary>
    public bool DeleteDevice(long userId, string thumbprint)
    {
        using DbCommand command = Db.Command("DELETE FROM user_devices WHERE user_id = @u AND thumbprint = @d", ("@u", userId), ("@d", thumbprint));
        return command.ExecuteNonQuery() > 0;
    }

    /// <summary>
    /// Removes the device from (issuer, subject)'s user, if there is one: a licence now grants it, and a device occupies
    /// a slot under one grant only.
    /// </summary>
    public void ReleaseDevice(string issuer, string subject, string thumbprint) =>
        Db.NonQuery(
            "DELETE FROM user_devices WHERE thumbprint = @d AND user_id = (SELECT user_id FROM users WHERE issuer = @i AND subject = @s)",
            ("@i", issuer), ("@s", subject), ("@d", thumbprint));
}
