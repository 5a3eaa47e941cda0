using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using System.Threading.Channels;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Diagnostics;

namespace ModelSeal.Server.Storage;

/// <summary>
/// The key server's database: models, versions with their wrapped keys, licences, devices and the append-only audit
/// log, in SQLite (<see cref="SqliteStore"/>, the embedded default) or PostgreSQL (<see cref="PostgresStore"/>), with
/// the same plain parameterised SQL. Reads run concurrently on their own connections. Writes are serialised by one
/// writer with group commit: the writer takes every write waiting in its queue (up to <see cref="MaxBatch"/>), runs
/// them one after the other in one transaction that holds the database's write lock, each inside its own savepoint
/// (so each sees the writes before it, and a failing one is rolled back alone), commits once — one durable flush for
/// the whole batch — and only then completes the waiting callers. A commit failure fails every write of the batch.
/// The write lock is the database's, not the process's: on PostgreSQL several server instances serialise their write
/// transactions on it, so device counts, revocations and the audit chain stay exact across instances.
/// </summary>
internal abstract class Store : IDisposable
{
    /// <summary>The most writes one transaction takes.</summary>
    public const int MaxBatch = 256;

    // Held by the writer while it runs a batch, and by CheckpointAsync, which must not run inside a transaction.
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly Channel<WriteItem> _writes = Channel.CreateUnbounded<WriteItem>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Thread _writer;
    private int _queued;
    private bool _disposed;

    protected Store()
    {
        // A thread of its own: the writer blocks in the database and its flushes, which must not take a thread-pool
        // thread from request handling (a 2-core machine starts with 2 of them).
        _writer = new Thread(WriteLoop) { IsBackground = true, Name = "ModelSeal store writer" };
        _writer.Start();
    }

    /// <summary>What the database is, for messages and logs (never with a password).</summary>
    public abstract string Description { get; }

    /// <summary>Creates the schema or migrates it to this server's version; refuses a newer one.</summary>
    public abstract void Initialize();

    /// <summary>
    /// Initializes the store for a server or an offline migration, and says whether any wrapped data key is stored. A
    /// database that cannot be opened is a <see cref="ServerConfigurationException"/> naming it (never its password).
    /// </summary>
    public bool Prepare()
    {
        try
        {
            Initialize();
            return Read(s => s.HasWrappedKeys());
        }
        catch (DbException e)
        {
            throw new ServerConfigurationException($"The {Description} could not be opened: {e.Message}", e);
        }
    }

    /// <summary>Opens a connection to the database.</summary>
    protected abstract DbConnection Open();

    /// <summary>Begins a write transaction that holds the database's write lock until it ends.</summary>
    protected abstract DbTransaction BeginWrite(DbConnection connection);

    /// <summary>Runs before a version's wrapped key is deleted, on the write's session (e.g. SQLite's secure_delete).</summary>
    internal virtual void BeforeDestroy(Session session)
    {
    }

    /// <summary>Imports a snapshot into this (empty) store's tables in the write transaction of <paramref name="session"/>.</summary>
    internal virtual void Import(Session session, StoreSnapshot snapshot) => session.Import(snapshot, identityInsert: string.Empty);

    /// <summary>Best effort, after a destroy: makes the database let go of the deleted key's bytes where it can.</summary>
    protected abstract void Compact(DbConnection connection);

    /// <summary>Releases pooled connections.</summary>
    protected abstract void ClearPools();

    /// <summary>Runs a read on its own connection.</summary>
    public T Read<T>(Func<Session, T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        using DbConnection connection = Open();
        return work(new Session(connection, null, this));
    }

    /// <summary>
    /// Runs <paramref name="work"/> in a write transaction and completes once that transaction has committed durably;
    /// an exception rolls back everything <paramref name="work"/> wrote (and nothing else) and is rethrown here. The
    /// transaction may hold other callers' writes (group commit): each <paramref name="work"/> runs alone, in queue
    /// order, and sees what the writes before it did. If the commit fails, the result (when it is
    /// <see cref="IDisposable"/>) is disposed and the commit's exception is thrown.
    /// </summary>
    /// <remarks>
    /// <paramref name="cancellationToken"/> is honoured until the writer takes the work; from then on it runs and
    /// commits.
    /// </remarks>
    public Task<T> WriteAsync<T>(Func<Session, T> work, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(work);
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<T>(cancellationToken);
        }

        var item = new WriteItem<T>(work, cancellationToken);
        Interlocked.Increment(ref _queued);
        if (_writes.Writer.TryWrite(item))
        {
            return item.Task;
        }

        Interlocked.Decrement(ref _queued);
        return Task.FromException<T>(new ObjectDisposedException(GetType().Name));
    }

    /// <summary>Where the duration of each write transaction is recorded (none when null).</summary>
    internal ServerTelemetry? Telemetry { get; init; }

    /// <summary>Writes queued and not yet taken by the writer (for tests and diagnostics).</summary>
    internal int QueuedWrites => Volatile.Read(ref _queued);

    /// <summary>A short description of a database error for logs: its type and code, never its data.</summary>
    public static string ErrorCode(DbException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return exception switch
        {
            Microsoft.Data.Sqlite.SqliteException sqlite => string.Create(CultureInfo.InvariantCulture, $"SQLite error {sqlite.SqliteErrorCode}"),
            _ when exception.SqlState is { } state => "SQLSTATE " + state,
            _ => exception.GetType().Name,
        };
    }

    private void WriteLoop()
    {
        var batch = new List<WriteItem>(MaxBatch);
        while (WaitForWrites())
        {
            _writeGate.Wait();
            try
            {
                while (batch.Count < MaxBatch && _writes.Reader.TryRead(out WriteItem? item))
                {
                    Interlocked.Decrement(ref _queued);
                    if (item.CancellationToken.IsCancellationRequested)
                    {
                        item.Cancel();
                    }
                    else
                    {
                        batch.Add(item);
                    }
                }

                if (batch.Count > 0)
                {
                    RunBatch(batch);
                }
            }
            finally
            {
                batch.Clear();
                _writeGate.Release();
            }
        }
    }

    private bool WaitForWrites()
    {
        ValueTask<bool> ready = _writes.Reader.WaitToReadAsync();
        return ready.IsCompletedSuccessfully ? ready.Result : ready.AsTask().GetAwaiter().GetResult();
    }

    /// <summary>One transaction for the whole batch, a savepoint per write; completes every write after the commit.</summary>
    private void RunBatch(List<WriteItem> batch)
    {
        Exception? failure = null;
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            using DbConnection connection = Open();
            using DbTransaction transaction = BeginWrite(connection);
            var session = new Session(connection, transaction, this);
            foreach (WriteItem item in batch)
            {
                transaction.Save(Savepoint);
                if (item.Run(session))
                {
                    transaction.Release(Savepoint);
                }
                else
                {
                    // Its own writes only; a rollback that fails (the transaction is gone) fails the whole batch.
                    transaction.Rollback(Savepoint);
                    transaction.Release(Savepoint);
                }
            }

            transaction.Commit();
        }
#pragma warning disable CA1031 // Whatever ends the transaction is handed to every caller of the batch.
        catch (Exception e)
#pragma warning restore CA1031
        {
            failure = e;
        }

        Telemetry?.StoreWrite(start, failure is null);
        foreach (WriteItem item in batch)
        {
            item.Complete(failure);
        }
    }

    /// <summary>
    /// Best effort, after a destroy: lets the database drop the deleted key's bytes (SQLite: moves the WAL into the
    /// database file and truncates it; PostgreSQL: vacuums the versions table).
    /// </summary>
    public async Task CheckpointAsync(CancellationToken cancellationToken)
    {
        await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using DbConnection connection = Open();
            Compact(connection);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>Runs the queued writes, stops the writer and releases pooled connections.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;

        // Writes already queued still run and commit; new ones are refused.
        _writes.Writer.TryComplete();
        _writer.Join();
        ClearPools();
        _writeGate.Dispose();
    }

    private const string Savepoint = "write";

    protected static void Execute(DbConnection connection, DbTransaction? transaction, string sql)
    {
        ArgumentNullException.ThrowIfNull(connection);
        using DbCommand command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    protected static object? Scalar(DbConnection connection, DbTransaction? transaction, string sql)
    {
        ArgumentNullException.ThrowIfNull(connection);
        using DbCommand command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    /// <summary>Chains the records of a schema-1 audit log (see <see cref="Session.ChainUnhashedAudit"/>).</summary>
    protected void ChainUnhashedAudit(DbConnection connection, DbTransaction transaction) =>
        new Session(connection, transaction, this).ChainUnhashedAudit();

    /// <summary>A queued write: its work, its caller's token, and how to complete the caller.</summary>
    private abstract class WriteItem(CancellationToken cancellationToken)
    {
        public CancellationToken CancellationToken { get; } = cancellationToken;

        /// <summary>Runs the work; false when it threw (the exception is kept for the caller).</summary>
        public abstract bool Run(Session session);

        /// <summary>Completes the caller: with the work's result or exception, or the commit's exception.</summary>
        public abstract void Complete(Exception? commitFailure);

        public abstract void Cancel();
    }

    private sealed class WriteItem<T>(Func<Session, T> work, CancellationToken cancellationToken) : WriteItem(cancellationToken)
    {
        // Continuations run on the thread pool, not on the writer, which goes on to the next batch.
        private readonly TaskCompletionSource<T> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private T? _result;
        private Exception? _exception;

        public Task<T> Task => _completion.Task;

        public override bool Run(Session session)
        {
            try
            {
                _result = work(session);
                return true;
            }
#pragma warning disable CA1031 // Handed to the caller, as if the work had run on its own thread.
            catch (Exception e)
#pragma warning restore CA1031
            {
                _exception = e;
                return false;
            }
        }

        public override void Complete(Exception? commitFailure)
        {
            if (_exception is not null)
            {
                _completion.SetException(_exception);
            }
            else if (commitFailure is not null)
            {
                (_result as IDisposable)?.Dispose();
                _completion.SetException(commitFailure);
            }
            else
            {
                _completion.SetResult(_result!);
            }

            _result = default;
        }

        public override void Cancel() => _completion.SetCanceled(CancellationToken);
    }

    /// <summary>One connection (and, for writes, its transaction) with the store's queries.</summary>
    internal sealed class Session(DbConnection connection, DbTransaction? transaction, Store store)
    {
        // ---- models and versions ----------------------------------------------------------------------------

        public bool ModelExists(string modelId) =>
            Exists("SELECT 1 FROM models WHERE model_id = @m", ("@m", modelId));

        public void InsertModel(string modelId, DateTimeOffset now) =>
            NonQuery("INSERT INTO models (model_id, created_at) VALUES (@m, @t)", ("@m", modelId), ("@t", Seconds(now)));

        public List<ModelRecord> ListModels()
        {
            var versions = new Dictionary<string, List<VersionRecord>>(StringComparer.Ordinal);
            using (DbCommand command = Command("SELECT seq, model_id, version, key_id, state, created_at FROM model_versions ORDER BY seq"))
            using (DbDataReader reader = command.ExecuteReader())
            {
                while (reader.Read())
                {
                    VersionRecord record = ReadVersion(reader);
                    if (!versions.TryGetValue(record.ModelId, out List<VersionRecord>? list))
                    {
                        versions[record.ModelId] = list = [];
                    }

                    list.Add(record);
                }
            }

            var models = new List<ModelRecord>();
            using (DbCommand command = Command("SELECT model_id, created_at FROM models ORDER BY model_id"))
            using (DbDataReader reader = command.ExecuteReader())
            {
                while (reader.Read())
                {
                    string modelId = reader.GetString(0);
                    models.Add(new ModelRecord(modelId, Time(reader.GetInt64(1)), versions.TryGetValue(modelId, out List<VersionRecord>? list) ? list : []));
                }
            }

            return models;
        }

        public VersionRecord? FindVersion(string modelId, string version) =>
            SingleVersion("SELECT seq, model_id, version, key_id, state, created_at FROM model_versions WHERE model_id = @m AND version = @v", ("@m", modelId), ("@v", version));

        public VersionRecord? FindLatestActiveVersion(string modelId) =>
            SingleVersion("SELECT seq, model_id, version, key_id, state, created_at FROM model_versions WHERE model_id = @m AND state = 'active' ORDER BY seq DESC LIMIT 1", ("@m", modelId));

        public List<string> VersionNames(string modelId)
        {
            using DbCommand command = Command("SELECT version FROM model_versions WHERE model_id = @m", ("@m", modelId));
            using DbDataReader reader = command.ExecuteReader();
            var names = new List<string>();
            while (reader.Read())
            {
                names.Add(reader.GetString(0));
            }

            return names;
        }

        public bool KeyIdExists(string keyId) =>
            Exists("SELECT 1 FROM model_versions WHERE key_id = @k", ("@k", keyId));

        public long InsertVersion(string modelId, string version, string keyId, int masterKeyVersion, byte[] wrappedKey, DateTimeOffset now)
        {
            using DbCommand command = Command(
                "INSERT INTO model_versions (model_id, version, key_id, state, master_key_version, wrapped_key, created_at) VALUES (@m, @v, @k, 'active', @mk, @w, @t) RETURNING seq",
                ("@m", modelId), ("@v", version), ("@k", keyId), ("@mk", masterKeyVersion), ("@w", wrappedKey), ("@t", Seconds(now)));
            return (long)command.ExecuteScalar()!;
        }

        /// <summary>The state and wrapped key of a version (null key when destroyed).</summary>
        public (string State, int MasterKeyVersion, byte[]? WrappedKey) ReadKey(long sequence)
        {
            using DbCommand command = Command("SELECT state, master_key_version, wrapped_key FROM model_versions WHERE seq = @s", ("@s", sequence));
            using DbDataReader reader = command.ExecuteReader();
            if (!reader.Read())
            {
                throw new InvalidOperationException("The model version disappeared.");
            }

            return (reader.GetString(0), reader.IsDBNull(1) ? 0 : reader.GetInt32(1), reader.IsDBNull(2) ? null : (byte[])reader.GetValue(2));
        }

        public void SetState(long sequence, string state)
        {
            if (state == VersionStates.Destroyed)
            {
                store.BeforeDestroy(this);
                NonQuery("UPDATE model_versions SET state = 'destroyed', wrapped_key = NULL, master_key_version = NULL WHERE seq = @s", ("@s", sequence));
            }
            else
            {
                NonQuery("UPDATE model_versions SET state = @st WHERE seq = @s", ("@st", state), ("@s", sequence));
            }
        }

        public List<(long Sequence, string KeyId, int MasterKeyVersion, byte[] WrappedKey)> WrappedKeys()
        {
            using DbCommand command = Command("SELECT seq, key_id, master_key_version, wrapped_key FROM model_versions WHERE wrapped_key IS NOT NULL ORDER BY seq");
            using DbDataReader reader = command.ExecuteReader();
            var rows = new List<(long, string, int, byte[])>();
            while (reader.Read())
            {
                rows.Add((reader.GetInt64(0), reader.GetString(1), reader.GetInt32(2), (byte[])reader.GetValue(3)));
            }

            return rows;
        }

        public bool HasWrappedKeys() => Exists("SELECT 1 FROM model_versions WHERE wrapped_key IS NOT NULL");

        public void UpdateWrappedKey(long sequence, int masterKeyVersion, byte[] wrappedKey) =>
            NonQuery("UPDATE model_versions SET master_key_version = @mk, wrapped_key = @w WHERE seq = @s AND wrapped_key IS NOT NULL", ("@mk", masterKeyVersion), ("@w", wrappedKey), ("@s", sequence));

        // ---- licences and devices ---------------------------------------------------------------------------

        public void InsertLicence(LicenceRecord licence) =>
            NonQuery(
                "INSERT INTO licences (licence_id, subject, models, not_before, expires_at, max_devices, created_at, revoked_at, credential_hash) VALUES (@id, @s, @m, @nb, @ex, @max, @t, NULL, @h)",
                ("@id", licence.LicenceId),
                ("@s", licence.Subject),
                ("@m", JsonSerializer.Serialize(licence.Models)),
                ("@nb", licence.NotBefore is { } nb ? Seconds(nb) : null),
                ("@ex", licence.ExpiresAt is { } ex ? Seconds(ex) : null),
                ("@max", licence.MaxDevices),
                ("@t", Seconds(licence.CreatedAt)),
                ("@h", licence.CredentialHash));

        public LicenceRecord? GetLicence(string licenceId) =>
            Licences(LicenceColumns + " WHERE licence_id = @id", ("@id", licenceId)).FirstOrDefault();

        /// <summary>The licence of a subject (the newest, when there are several).</summary>
        public LicenceRecord? FindLicenceBySubject(string subject) =>
            Licences(LicenceColumns + " WHERE subject = @s ORDER BY created_at DESC, rowid DESC LIMIT 1", ("@s", subject)).FirstOrDefault();

        public List<LicenceRecord> ListLicences() =>
            Licences(LicenceColumns + " ORDER BY created_at, rowid");

        public void RevokeLicence(string licenceId, DateTimeOffset now) =>
            NonQuery("UPDATE licences SET revoked_at = @t WHERE licence_id = @id AND revoked_at IS NULL", ("@t", Seconds(now)), ("@id", licenceId));

        /// <summary>True when the licence exists and is not revoked.</summary>
        public bool LicenceActive(string licenceId) =>
            Exists("SELECT 1 FROM licences WHERE licence_id = @id AND revoked_at IS NULL", ("@id", licenceId));

        public bool DeviceExists(string licenceId, string thumbprint) =>
            Exists("SELECT 1 FROM devices WHERE licence_id = @l AND thumbprint = @d", ("@l", licenceId), ("@d", thumbprint));

        public long CountDevices(string licenceId)
        {
            using DbCommand command = Command("SELECT COUNT(*) FROM devices WHERE licence_id = @l", ("@l", licenceId));
            return (long)command.ExecuteScalar()!;
        }

        public void InsertDevice(string licenceId, string thumbprint, DateTimeOffset now) =>
            NonQuery("INSERT INTO devices (licence_id, thumbprint, first_seen, last_seen) VALUES (@l, @d, @t, @t)", ("@l", licenceId), ("@d", thumbprint), ("@t", Seconds(now)));

        public void TouchDevice(string licenceId, string thumbprint, DateTimeOffset now) =>
            NonQuery("UPDATE devices SET last_seen = CASE WHEN last_seen < @t THEN @t ELSE last_seen END WHERE licence_id = @l AND thumbprint = @d", ("@l", licenceId), ("@d", thumbprint), ("@t", Seconds(now)));

        public List<DeviceRecord> ListDevices(string licenceId)
        {
            using DbCommand command = Command("SELECT thumbprint, first_seen, last_seen FROM devices WHERE licence_id = @l ORDER BY first_seen, rowid", ("@l", licenceId));
            using DbDataReader reader = command.ExecuteReader();
            var devices = new List<DeviceRecord>();
            while (reader.Read())
            {
                devices.Add(new DeviceRecord(reader.GetString(0), Time(reader.GetInt64(1)), Time(reader.GetInt64(2))));
            }

            return devices;
        }

        // ---- audit ------------------------------------------------------------------------------------------

        /// <summary>
        /// Appends a record chained to the last one (read inside this write transaction, so concurrent writes, which
        /// the writer runs one after another, chain in commit order). Its id is the last id + 1.
        /// </summary>
        public long AppendAudit(AuditEntry entry, DateTimeOffset now)
        {
            long lastId = 0;
            byte[] previous = AuditChain.Genesis;
            using (DbCommand last = Command("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1"))
            using (DbDataReader reader = last.ExecuteReader())
            {
                if (reader.Read())
                {
                    lastId = reader.GetInt64(0);

                    // A missing or malformed hash is reported by verification; appends go on chaining to it.
                    previous = reader.IsDBNull(1) ? AuditChain.Genesis : (byte[])reader.GetValue(1);
                }
            }

            long id = lastId + 1;
            long at = Seconds(now);
            byte[] hash = AuditChain.Link(previous, id, at, entry);
            NonQuery(
                "INSERT INTO audit (id, at, event, subject, licence_id, model_id, version, key_id, device, client, outcome, hash) VALUES (@id, @t, @e, @s, @l, @m, @v, @k, @d, @c, @o, @h)",
                ("@id", id), ("@t", at), ("@e", entry.Event), ("@s", entry.Subject), ("@l", entry.LicenceId), ("@m", entry.ModelId),
                ("@v", entry.Version), ("@k", entry.KeyId), ("@d", entry.Device), ("@c", entry.Client), ("@o", entry.Outcome), ("@h", hash));
            return id;
        }

        public List<AuditRecord> ListAudit(long after, int limit)
        {
            using DbCommand command = Command(AuditColumns + " WHERE id > @a ORDER BY id LIMIT @n", ("@a", after), ("@n", limit));
            using DbDataReader reader = command.ExecuteReader();
            var records = new List<AuditRecord>();
            while (reader.Read())
            {
                records.Add(ReadAudit(reader));
            }

            return records;
        }

        /// <summary>
        /// Walks the whole log in id order and checks every link; stops at the first record that does not chain.
        /// With <paramref name="expectRecords"/> and <paramref name="expectHash"/> (a head kept from an earlier
        /// verification) it also checks that record number <paramref name="expectRecords"/> still has that hash,
        /// which detects records removed from the end.
        /// </summary>
        public AuditVerification VerifyAudit(long? expectRecords, byte[]? expectHash)
        {
            long count = 0;
            long? lastId = null;
            byte[] previous = AuditChain.Genesis;
            using (DbCommand command = Command(AuditColumns + " ORDER BY id"))
            using (DbDataReader reader = command.ExecuteReader())
            {
                while (reader.Read())
                {
                    AuditRecord record = ReadAudit(reader);
                    byte[] expected = AuditChain.Link(previous, record.Id, Seconds(record.At), record.Entry);
                    if (record.Hash is null || !System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(expected, record.Hash))
                    {
                        string why = record.Hash is null
                            ? "it has no hash"
                            : lastId is { } before && record.Id != before + 1
                                ? string.Create(CultureInfo.InvariantCulture, $"its hash does not match, and the ids jump from {before} to {record.Id}: records were deleted")
                                : "its hash does not match: this record was altered, or a record before it was deleted, altered or moved";
                        return new AuditVerification(false, count, lastId, previous, record.Id, string.Create(CultureInfo.InvariantCulture, $"record {record.Id} does not chain to the record before it: {why}."));
                    }

                    count++;
                    lastId = record.Id;
                    previous = expected;
                    if (count == expectRecords && expectHash is not null && !expected.AsSpan().SequenceEqual(expectHash))
                    {
                        return new AuditVerification(false, count, lastId, previous, record.Id, string.Create(CultureInfo.InvariantCulture, $"record {record.Id}, number {count} in the log, does not have the expected head hash: the log was rewritten from there on or before."));
                    }
                }
            }

            if (count < expectRecords)
            {
                return new AuditVerification(false, count, lastId, previous, null, string.Create(CultureInfo.InvariantCulture, $"the log has {count} records where {expectRecords} were expected: records were removed from its end."));
            }

            return new AuditVerification(true, count, lastId, previous, null, null);
        }

        /// <summary>Computes the hash of every record without one, in id order (the migration to schema version 2).</summary>
        internal void ChainUnhashedAudit()
        {
            const int Page = 10_000;
            long after = 0;
            byte[] previous = AuditChain.Genesis;
            while (true)
            {
                List<AuditRecord> page = ListAudit(after, Page);
                foreach (AuditRecord record in page)
                {
                    byte[] hash = record.Hash ?? AuditChain.Link(previous, record.Id, Seconds(record.At), record.Entry);
                    if (record.Hash is null)
                    {
                        NonQuery("UPDATE audit SET hash = @h WHERE id = @id", ("@h", hash), ("@id", record.Id));
                    }

                    previous = hash;
                }

                if (page.Count < Page)
                {
                    return;
                }

                after = page[^1].Id;
            }
        }

        /// <summary>SQLite only: the connection's <c>PRAGMA synchronous</c> (2 = FULL).</summary>
        public long Synchronous()
        {
            using DbCommand command = Command("PRAGMA synchronous");
            return (long)command.ExecuteScalar()!;
        }

        /// <summary>A cheap query that proves the database answers.</summary>
        public long CountModels()
        {
            using DbCommand command = Command("SELECT COUNT(*) FROM models");
            return (long)command.ExecuteScalar()!;
        }

        // ---- moving a whole database (DatabaseMigration) --------------------------------------------------

        /// <summary>Every row of every table, in insertion order, wrapped keys and audit hashes as stored.</summary>
        public StoreSnapshot Export()
        {
            var models = new List<(string, long)>();
            using (DbCommand command = Command("SELECT model_id, created_at FROM models ORDER BY model_id"))
            using (DbDataReader reader = command.ExecuteReader())
            {
                while (reader.Read())
                {
                    models.Add((reader.GetString(0), reader.GetInt64(1)));
                }
            }

            var versions = new List<VersionRow>();
            using (DbCommand command = Command("SELECT seq, model_id, version, key_id, state, master_key_version, wrapped_key, created_at FROM model_versions ORDER BY seq"))
            using (DbDataReader reader = command.ExecuteReader())
            {
                while (reader.Read())
                {
                    versions.Add(new VersionRow(
                        reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4),
                        reader.IsDBNull(5) ? null : reader.GetInt32(5), reader.IsDBNull(6) ? null : (byte[])reader.GetValue(6), reader.GetInt64(7)));
                }
            }

            var devices = new List<(string, string, long, long)>();
            using (DbCommand command = Command("SELECT licence_id, thumbprint, first_seen, last_seen FROM devices ORDER BY rowid"))
            using (DbDataReader reader = command.ExecuteReader())
            {
                while (reader.Read())
                {
                    devices.Add((reader.GetString(0), reader.GetString(1), reader.GetInt64(2), reader.GetInt64(3)));
                }
            }

            var audit = new List<AuditRecord>();
            for (List<AuditRecord> page = ListAudit(0, 10_000); page.Count > 0; page = ListAudit(page[^1].Id, 10_000))
            {
                audit.AddRange(page);
            }

            return new StoreSnapshot(models, versions, Licences(LicenceColumns + " ORDER BY rowid"), devices, audit);
        }

        /// <summary>
        /// Inserts a snapshot into empty tables, keeping version sequence numbers, insertion order, audit ids and
        /// hashes; <paramref name="identityInsert"/> is what lets an explicit value into an identity column.
        /// </summary>
        public void Import(StoreSnapshot snapshot, string identityInsert)
        {
            ArgumentNullException.ThrowIfNull(snapshot);
            foreach ((string modelId, long createdAt) in snapshot.Models)
            {
                NonQuery("INSERT INTO models (model_id, created_at) VALUES (@m, @t)", ("@m", modelId), ("@t", createdAt));
            }

            foreach (VersionRow v in snapshot.Versions)
            {
                NonQuery(
                    $"INSERT INTO model_versions (seq, model_id, version, key_id, state, master_key_version, wrapped_key, created_at) {identityInsert} VALUES (@s, @m, @v, @k, @st, @mk, @w, @t)",
                    ("@s", v.Sequence), ("@m", v.ModelId), ("@v", v.Version), ("@k", v.KeyId), ("@st", v.State), ("@mk", v.MasterKeyVersion), ("@w", v.WrappedKey), ("@t", v.CreatedAt));
            }

            foreach (LicenceRecord licence in snapshot.Licences)
            {
                InsertLicence(licence);
                if (licence.RevokedAt is { } revoked)
                {
                    RevokeLicence(licence.LicenceId, revoked);
                }
            }

            foreach ((string licenceId, string thumbprint, long firstSeen, long lastSeen) in snapshot.Devices)
            {
                NonQuery("INSERT INTO devices (licence_id, thumbprint, first_seen, last_seen) VALUES (@l, @d, @f, @t)", ("@l", licenceId), ("@d", thumbprint), ("@f", firstSeen), ("@t", lastSeen));
            }

            foreach (AuditRecord record in snapshot.Audit)
            {
                AuditEntry e = record.Entry;
                NonQuery(
                    "INSERT INTO audit (id, at, event, subject, licence_id, model_id, version, key_id, device, client, outcome, hash) VALUES (@id, @t, @e, @s, @l, @m, @v, @k, @d, @c, @o, @h)",
                    ("@id", record.Id), ("@t", Seconds(record.At)), ("@e", e.Event), ("@s", e.Subject), ("@l", e.LicenceId), ("@m", e.ModelId),
                    ("@v", e.Version), ("@k", e.KeyId), ("@d", e.Device), ("@c", e.Client), ("@o", e.Outcome), ("@h", record.Hash));
            }
        }

        /// <summary>True when no table holds a row.</summary>
        public bool IsEmpty() =>
            !Exists("SELECT 1 FROM models") && !Exists("SELECT 1 FROM licences") && !Exists("SELECT 1 FROM audit");

        // ---- helpers ----------------------------------------------------------------------------------------

        private static long Seconds(DateTimeOffset time) => time.ToUnixTimeSeconds();

        private static DateTimeOffset Time(long seconds) => DateTimeOffset.FromUnixTimeSeconds(seconds);

        private static string? NullableString(DbDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

        private const string LicenceColumns = "SELECT licence_id, subject, models, not_before, expires_at, max_devices, created_at, revoked_at, credential_hash FROM licences";

        private const string AuditColumns = "SELECT id, at, event, subject, licence_id, model_id, version, key_id, device, client, outcome, hash FROM audit";

        private static AuditRecord ReadAudit(DbDataReader reader) =>
            new(
                reader.GetInt64(0),
                Time(reader.GetInt64(1)),
                new AuditEntry(reader.GetString(2), reader.GetString(10), NullableString(reader, 3), NullableString(reader, 4), NullableString(reader, 5), NullableString(reader, 6), NullableString(reader, 7), NullableString(reader, 8), NullableString(reader, 9)),
                reader.IsDBNull(11) ? null : (byte[])reader.GetValue(11));

        private static VersionRecord ReadVersion(DbDataReader reader) =>
            new(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), Time(reader.GetInt64(5)));

        private VersionRecord? SingleVersion(string sql, params ReadOnlySpan<(string Name, object? Value)> parameters)
        {
            using DbCommand command = Command(sql, parameters);
            using DbDataReader reader = command.ExecuteReader();
            return reader.Read() ? ReadVersion(reader) : null;
        }

        private List<LicenceRecord> Licences(string sql, params ReadOnlySpan<(string Name, object? Value)> parameters)
        {
            using DbCommand command = Command(sql, parameters);
            using DbDataReader reader = command.ExecuteReader();
            var licences = new List<LicenceRecord>();
            while (reader.Read())
            {
                licences.Add(new LicenceRecord(
                    reader.GetString(0),
                    reader.GetString(1),
                    JsonSerializer.Deserialize<string[]>(reader.GetString(2)) ?? [],
                    reader.IsDBNull(3) ? null : Time(reader.GetInt64(3)),
                    reader.IsDBNull(4) ? null : Time(reader.GetInt64(4)),
                    reader.GetInt32(5),
                    Time(reader.GetInt64(6)),
                    reader.IsDBNull(7) ? null : Time(reader.GetInt64(7)),
                    (byte[])reader.GetValue(8)));
            }

            return licences;
        }

        private bool Exists(string sql, params ReadOnlySpan<(string Name, object? Value)> parameters)
        {
            using DbCommand command = Command(sql, parameters);
            return command.ExecuteScalar() is not null;
        }

        internal void NonQuery(string sql, params ReadOnlySpan<(string Name, object? Value)> parameters)
        {
            using DbCommand command = Command(sql, parameters);
            command.ExecuteNonQuery();
        }

        private DbCommand Command(string sql, params ReadOnlySpan<(string Name, object? Value)> parameters)
        {
            DbCommand command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = sql;
            foreach ((string name, object? value) in parameters)
            {
                DbParameter parameter = command.CreateParameter();
                parameter.ParameterName = name;
                parameter.Value = value ?? DBNull.Value;
                command.Parameters.Add(parameter);
            }

            return command;
        }
    }
}
