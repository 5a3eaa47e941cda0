using System.Data.Common;
using System.Text.Json;

namespace ModelSeal.Server.Storage;

/// <summary>The audit log, read.</summary>
internal class AuditReads(DbSession db)
{
    private const int Page = 10_000;

    internal const string Columns = "SELECT id, at, event, subject, licence_id, model_id, version, key_id, device, client, outcome, hash, format, issuer, attributes FROM audit";

    protected DbSession Db { get; } = db;

    /// <summary>The latest <paramref name="limit"/> key releases and refusals of (issuer, subject), newest first.</summary>
    public List<AuditRecord> LatestOf(string issuer, string subject, int limit) =>
        Db.List(Read, Columns + " WHERE subject = @s AND issuer = @i AND event IN (@r, @f) ORDER BY id DESC LIMIT @n", ("@s", subject), ("@i", issuer), ("@r", AuditEvents.KeyReleased), ("@f", AuditEvents.KeyRefused), ("@n", limit));

    /// <summary>Up to <paramref name="limit"/> records after id <paramref name="after"/>, in id order.</summary>
    public List<AuditRecord> List(long after, int limit) =>
        Db.List(Read, Columns + " WHERE id > @a ORDER BY id LIMIT @n", ("@a", after), ("@n", limit));

    /// <summary>Up to <paramref name="limit"/> records after id <paramref name="after"/> that match <paramref name="filter"/>, in id order.</summary>
    public List<AuditRecord> List(long after, int limit, AuditFilter filter)
    {
        ArgumentNullException.ThrowIfNull(filter);
        var sql = new System.Text.StringBuilder(Columns).Append(" WHERE id > @a");
        var parameters = new List<(string, object?)> { ("@a", after), ("@n", limit) };
        if (filter.LicenceId is { } licence)
        {
            sql.Append(" AND licence_id = @l");
            parameters.Add(("@l", licence));
        }

        if (filter.Subject is { } subject)
        {
            sql.Append(" AND subject = @s");
            parameters.Add(("@s", subject));
        }

        if (filter.ModelId is { } model)
        {
            sql.Append(" AND model_id = @m");
            parameters.Add(("@m", model));
        }

        if (filter.Events is { Count: > 0 } events)
        {
            sql.Append(" AND event IN (").AppendJoin(", ", events.Select((_, i) => "@e" + i.ToString(System.Globalization.CultureInfo.InvariantCulture))).Append(')');
            parameters.AddRange(events.Select((e, i) => ("@e" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), (object?)e)));
        }

        if (filter.Since is { } since)
        {
            sql.Append(" AND at >= @since");
            parameters.Add(("@since", DbSession.Seconds(since)));
        }

        if (filter.Until is { } until)
        {
            sql.Append(" AND at < @until");
            parameters.Add(("@until", DbSession.Seconds(until)));
        }

        sql.Append(" ORDER BY id LIMIT @n");
        return Db.List(Read, sql.ToString(), [.. parameters]);
    }

    /// <summary>Every record that matches <paramref name="filter"/>, in id order, read a page at a time.</summary>
    public IEnumerable<AuditRecord> All(AuditFilter filter)
    {
        for (List<AuditRecord> page = List(0, Page, filter); page.Count > 0; page = page.Count < Page ? [] : List(page[^1].Id, Page, filter))
        {
            foreach (AuditRecord record in page)
            {
                yield return record;
            }
        }
    }

    /// <summary>Every record in id order, read a page at a time.</summary>
    public IEnumerable<AuditRecord> All()
    {
        for (List<AuditRecord> page = List(0, Page); page.Count > 0; page = page.Count < Page ? [] : List(page[^1].Id, Page))
        {
            foreach (AuditRecord record in page)
            {
                yield return record;
            }
        }
    }

    /// <summary>Walks the whole log (<see cref="AuditChain.Verify"/>), against <paramref name="checkpoint"/> when given.</summary>
    public AuditVerification Verify(long? expectRecords, byte[]? expectHash, AuditCheckpoint? checkpoint = null) => AuditChain.Verify(All(), expectRecords, expectHash, checkpoint);

    /// <summary>The last record's id and hash (0 and null when the log is empty).</summary>
    public (long Id, byte[]? Hash) Head() =>
        Db.List(r => (r.GetInt64(0), r.IsDBNull(1) ? null : (byte[])r.GetValue(1)), "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").FirstOrDefault();

    /// <summary>How many records have an id in (<paramref name="afterId"/>, <paramref name="throughId"/>].</summary>
    public long CountBetween(long afterId, long throughId) =>
        Db.Count("SELECT COUNT(*) FROM audit WHERE id > @a AND id <= @b", ("@a", afterId), ("@b", throughId));

    /// <summary>The checkpoint that covers the most records (the latest written among equals); null when there is none.</summary>
    public AuditCheckpoint? LatestCheckpoint() =>
        Db.List(ReadCheckpoint, CheckpointColumns + " ORDER BY last_id DESC, id DESC LIMIT 1").FirstOrDefault();

    /// <summary>Every checkpoint in id order (moving a database).</summary>
    public List<AuditCheckpoint> Checkpoints() => Db.List(ReadCheckpoint, CheckpointColumns + " ORDER BY id");

    private const string CheckpointColumns = "SELECT id, records, last_id, last_hash, at, key_id, signature FROM audit_checkpoints";

    private static AuditCheckpoint ReadCheckpoint(DbDataReader r) =>
        new(r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), (byte[])r.GetValue(3), DbSession.Time(r.GetInt64(4)), r.GetString(5), (byte[])r.GetValue(6));

    private static AuditRecord Read(DbDataReader r)
    {
        Dictionary<string, string>? attributes = r.IsDBNull(14) ? null : JsonSerializer.Deserialize<Dictionary<string, string>>(r.GetString(14));
        var entry = new AuditEntry(
            r.GetString(2),
            r.GetString(10),
            DbSession.NullableString(r, 3),
            DbSession.NullableString(r, 4),
            DbSession.NullableString(r, 5),
            DbSession.NullableString(r, 6),
            DbSession.NullableString(r, 7),
            DbSession.NullableString(r, 8),
            DbSession.NullableString(r, 9),
            DbSession.NullableString(r, 13),
            attributes);
        return new AuditRecord(r.GetInt64(0), DbSession.Time(r.GetInt64(1)), entry, r.IsDBNull(11) ? null : (byte[])r.GetValue(11), r.GetInt32(12));
    }
}

/// <summary>The audit log, read and appended to (never changed: the database refuses updates and deletes).</summary>
internal sealed class AuditWrites(DbSession db) : AuditReads(db)
{
    /// <summary>
    /// Appends a record (format <see cref="AuditChain.CurrentFormat"/>) chained to the last one, read inside this
    /// write transaction, so concurrent writes, which the writer runs one after another, chain in commit order. Its id
    /// is the last id + 1.
    /// </summary>
    public long Append(AuditEntry entry, DateTimeOffset now)
    {
        (long lastId, byte[]? lastHash) = Head();

        // A missing or malformed hash is reported by verification; appends go on chaining to it.
        var record = new AuditRecord(lastId + 1, DateTimeOffset.FromUnixTimeSeconds(DbSession.Seconds(now)), entry);
        Insert(record with { Hash = AuditChain.Link(lastHash ?? AuditChain.Genesis, record.Id, DbSession.Seconds(now), entry) });
        return record.Id;
    }

    /// <summary>Inserts a record exactly as given (moving a database).</summary>
    public void Insert(AuditRecord record)
    {
        AuditEntry e = record.Entry;
        Dictionary<string, string>? attributes = e.Attributes is { Count: > 0 } ? new Dictionary<string, string>(e.Attributes, StringComparer.Ordinal) : null;
        Db.NonQuery(
            "INSERT INTO audit (id, at, event, subject, licence_id, model_id, version, key_id, device, client, outcome, hash, format, issuer, attributes) VALUES (@id, @t, @e, @s, @l, @m, @v, @k, @d, @c, @o, @h, @f, @i, @a)",
            ("@id", record.Id), ("@t", DbSession.Seconds(record.At)), ("@e", e.Event), ("@s", e.Subject), ("@l", e.LicenceId), ("@m", e.ModelId),
            ("@v", e.Version), ("@k", e.KeyId), ("@d", e.Device), ("@c", e.Client), ("@o", e.Outcome), ("@h", record.Hash), ("@f", record.Format),
            ("@i", e.Issuer), ("@a", attributes is null ? null : JsonSerializer.Serialize(attributes)));
    }

    /// <summary>Stores a checkpoint; its id is the last checkpoint's + 1, unless it has one (moving a database).</summary>
    public long InsertCheckpoint(AuditCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        long id = checkpoint.Id > 0 ? checkpoint.Id : Db.Count("SELECT COALESCE(MAX(id), 0) + 1 FROM audit_checkpoints");
        Db.NonQuery(
            "INSERT INTO audit_checkpoints (id, records, last_id, last_hash, at, key_id, signature) VALUES (@id, @r, @l, @h, @t, @k, @s)",
            ("@id", id), ("@r", checkpoint.Records), ("@l", checkpoint.LastId), ("@h", checkpoint.LastHash), ("@t", DbSession.Seconds(checkpoint.At)), ("@k", checkpoint.KeyId), ("@s", checkpoint.Signature));
        return id;
    }

    /// <summary>Computes the hash of every record without one, in id order (the migration to schema version 2).</summary>
    public void ChainUnhashed()
    {
        byte[] previous = AuditChain.Genesis;
        foreach (AuditRecord record in All().ToList())
        {
            byte[] hash = record.Hash ?? AuditChain.Link(previous, record.Id, DbSession.Seconds(record.At), record.Entry, record.Format);
            if (record.Hash is null)
            {
                Db.NonQuery("UPDATE audit SET hash = @h WHERE id = @id", ("@h", hash), ("@id", record.Id));
            }

            previous = hash;
        }
    }
}
