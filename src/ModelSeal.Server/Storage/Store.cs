using System.Data.Common;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Diagnostics;

namespace ModelSeal.Server.Storage;

/// <summary>
/// The key server's database: models, versions with their wrapped keys, licences, devices and the append-only audit
/// log, in SQLite (<see cref="SqliteStore"/>, the embedded default) or PostgreSQL (<see cref="PostgresStore"/>), with
/// the same plain parameterised SQL (the query classes, one per aggregate). Reads run concurrently on their own
/// connections and cannot write (<see cref="ReadSession"/>). Writes go through the one <see cref="StoreWriter"/> (group
/// commit) in a transaction that holds the database's write lock — the database's, not the process's: on PostgreSQL
/// several server instances serialise their write transactions on it, so device counts, revocations and the audit
/// chain stay exact across instances. Everything that differs between the databases is in the two subclasses.
/// </summary>
internal abstract class Store : IDisposable
{
    private StoreWriter? _writer;
    private bool _disposed;

    /// <summary>What the database is, for messages and logs (never with a password).</summary>
    public abstract string Description { get; }

    /// <summary>Where the duration of each write transaction is recorded (none when null).</summary>
    internal ServerTelemetry? Telemetry { get; init; }

    /// <summary>Writes queued and not yet taken by the writer (for tests and diagnostics).</summary>
    internal int QueuedWrites => Writer.Queued;

    private StoreWriter Writer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return LazyInitializer.EnsureInitialized(ref _writer, () => new StoreWriter(Open, BeginWrite, Telemetry));
        }
    }

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
            return Read(s => s.Models.HasWrappedKeys());
        }
        catch (DbException e)
        {
            throw new ServerConfigurationException($"The {Description} could not be opened: {e.Message}", e);
        }
    }

    /// <summary>Runs a read on its own connection.</summary>
    public T Read<T>(Func<ReadSession, T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        using DbConnection connection = Open();
        return work(new ReadSession(new DbSession(connection, null)));
    }

    /// <summary>
    /// Runs <paramref name="work"/> in a write transaction and completes once that transaction has committed durably
    /// (<see cref="StoreWriter.WriteAsync"/>): an exception rolls back everything <paramref name="work"/> wrote and is
    /// rethrown here; the transaction may hold other callers' writes, each run alone, in queue order.
    /// </summary>
    public Task<T> WriteAsync<T>(Func<WriteSession, T> work, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(work);
        return Writer.WriteAsync((connection, transaction) => work(new WriteSession(new DbSession(connection, transaction), this)), cancellationToken);
    }

    /// <summary>
    /// Best effort, after a destroy: lets the database drop the deleted key's bytes (SQLite: moves the WAL into the
    /// database file and truncates it; PostgreSQL: vacuums the versions table). Runs between write transactions.
    /// </summary>
    public Task CheckpointAsync(CancellationToken cancellationToken) => Writer.ExclusiveAsync(Compact, cancellationToken);

    /// <summary>A short description of a database error for logs: its type and code, never its data.</summary>
    public virtual string ErrorCode(DbException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return exception.SqlState is { } state ? "SQLSTATE " + state : exception.GetType().Name;
    }

    /// <summary>Imports a snapshot into this (empty) store's tables in the write transaction of <paramref name="session"/>.</summary>
    internal virtual void Import(WriteSession session, StoreSnapshot snapshot) => session.Snapshot.Import(snapshot, identityInsert: string.Empty);

    /// <summary>Runs before a version's wrapped key is deleted, in the write's transaction (e.g. SQLite's secure_delete).</summary>
    internal virtual void BeforeDestroy(DbSession session)
    {
    }

    /// <summary>Opens a connection to the database.</summary>
    protected abstract DbConnection Open();

    /// <summary>Begins a write transaction that holds the database's write lock until it ends.</summary>
    protected abstract DbTransaction BeginWrite(DbConnection connection);

    /// <summary>Best effort, after a destroy: makes the database let go of the deleted key's bytes where it can.</summary>
    protected abstract void Compact(DbConnection connection);

    /// <summary>Releases pooled connections.</summary>
    protected abstract void ClearPools();

    protected static void Execute(DbConnection connection, DbTransaction? transaction, string sql) => new DbSession(connection, transaction).NonQuery(sql);

    protected static object? Scalar(DbConnection connection, DbTransaction? transaction, string sql)
    {
        using DbCommand command = new DbSession(connection, transaction).Command(sql);
        return command.ExecuteScalar();
    }

    /// <summary>Runs the queued writes, stops the writer and releases pooled connections.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _writer?.Dispose();
        ClearPools();
        GC.SuppressFinalize(this);
    }
}
