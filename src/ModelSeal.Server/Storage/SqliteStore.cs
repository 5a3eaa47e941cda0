using System.Data.Common;
using System.Globalization;
using Microsoft.Data.Sqlite;
using ModelSeal.Server.Configuration;

namespace ModelSeal.Server.Storage;

/// <summary>
/// The embedded default store: <c>modelseal.db</c> in the data directory (SQLite, WAL, <c>synchronous = FULL</c>).
/// Write transactions are <c>BEGIN IMMEDIATE</c>: SQLite's one writer lock.
/// </summary>
internal sealed class SqliteStore : Store
{
    // 1: the first schema. 2: audit.hash, the hash chain (docs/protocol.md section 4.1). 3: how a licence is claimed
    // (licences.claim, licences.issuer), the audit record's format, issuer and attributes (section 4.1, format 2).
    // 4: admin_credential, the admin credential's hash and epoch (the table is created by the schema; an existing
    // admin.credential file is hashed into it at the next start). 5: master_key, the master-key version that wraps new
    // data keys (the table is created by the schema; the next start records the provider's latest version once).
    // 6: audit_checkpoints, the signed checkpoints of the audit log (docs/protocol.md section 4.3; created, empty, by
    // AuditCheckpointsSchema on any earlier version). 7: users and user_devices, the users entitlement rules grant keys
    // to and their devices, and an index of the audit log by subject (created by UsersSchema on any earlier version).
    // 8: licences.attestation_policy, attestation_challenges and device_attestations (docs/protocol.md section 2.6;
    // the tables are created by AttestationSchema on any earlier version, the column added to an existing table).
    private const int SchemaVersion = 8;

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS models (
            model_id    TEXT PRIMARY KEY NOT NULL,
            created_at  INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE IF NOT EXISTS model_versions (
            seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
            model_id            TEXT NOT NULL REFERENCES models(model_id),
            version             TEXT NOT NULL,
            key_id              TEXT NOT NULL UNIQUE,
            state               TEXT NOT NULL CHECK (state IN ('active', 'disabled', 'destroyed')),
            master_key_version  INTEGER,
            wrapped_key         BLOB,
            created_at          INTEGER NOT NULL,
            UNIQUE (model_id, version),
            CHECK ((state = 'destroyed') = (wrapped_key IS NULL))
        ) STRICT;
        CREATE TABLE IF NOT EXISTS licences (
            licence_id       TEXT PRIMARY KEY NOT NULL,
            subject          TEXT NOT NULL,
            models           TEXT NOT NULL,
            not_before       INTEGER,
            expires_at       INTEGER,
            max_devices      INTEGER NOT NULL CHECK (max_devices >= 1),
            created_at       INTEGER NOT NULL,
            revoked_at       INTEGER,
            credential_hash  BLOB NOT NULL,
            claim            TEXT NOT NULL DEFAULT 'credential',
            issuer           TEXT,
            attestation_policy TEXT
        ) STRICT;
        CREATE INDEX IF NOT EXISTS licences_by_subject ON licences (subject, created_at);
        CREATE INDEX IF NOT EXISTS licences_by_issuer_subject ON licences (issuer, subject, created_at);
        CREATE TABLE IF NOT EXISTS devices (
            licence_id  TEXT NOT NULL REFERENCES licences(licence_id),
            thumbprint  TEXT NOT NULL,
            first_seen  INTEGER NOT NULL,
            last_seen   INTEGER NOT NULL,
            PRIMARY KEY (licence_id, thumbprint)
        ) STRICT;
        CREATE TABLE IF NOT EXISTS audit (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            at          INTEGER NOT NULL,
            event       TEXT NOT NULL,
            subject     TEXT,
            licence_id  TEXT,
            model_id    TEXT,
            version     TEXT,
            key_id      TEXT,
            device      TEXT,
            client      TEXT,
            outcome     TEXT NOT NULL,
            hash        BLOB,
            format      INTEGER NOT NULL DEFAULT 1,
            issuer      TEXT,
            attributes  TEXT
        ) STRICT;
        CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TABLE IF NOT EXISTS admin_credential (
            id               INTEGER PRIMARY KEY CHECK (id = 1),
            credential_hash  BLOB NOT NULL,
            epoch            INTEGER NOT NULL CHECK (epoch >= 1),
            updated_at       INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE IF NOT EXISTS master_key (
            id          INTEGER PRIMARY KEY CHECK (id = 1),
            version     INTEGER NOT NULL CHECK (version >= 1),
            updated_at  INTEGER NOT NULL
        ) STRICT;
        CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        """;

    // Version 6, on its own: applied to every database (IF NOT EXISTS), whatever version it comes from.
    private const string AuditCheckpointsSchema = """
        CREATE TABLE IF NOT EXISTS audit_checkpoints (
            id          INTEGER PRIMARY KEY,
            records     INTEGER NOT NULL,
            last_id     INTEGER NOT NULL,
            last_hash   BLOB NOT NULL,
            at          INTEGER NOT NULL,
            key_id      TEXT NOT NULL,
            signature   BLOB NOT NULL
        ) STRICT;
        CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
        BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
        CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
        BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
        """;

    // Version 7, on its own: applied to every database (IF NOT EXISTS), whatever version it comes from.
    private const string UsersSchema = """
        CREATE TABLE IF NOT EXISTS users (
            user_id     INTEGER PRIMARY KEY AUTOINCREMENT,
            issuer      TEXT NOT NULL,
            subject     TEXT NOT NULL,
            created_at  INTEGER NOT NULL,
            last_seen   INTEGER NOT NULL,
            blocked_at  INTEGER,
            UNIQUE (issuer, subject)
        ) STRICT;
        CREATE TABLE IF NOT EXISTS user_devices (
            user_id     INTEGER NOT NULL REFERENCES users(user_id),
            thumbprint  TEXT NOT NULL,
            first_seen  INTEGER NOT NULL,
            last_seen   INTEGER NOT NULL,
            rule        TEXT NOT NULL,
            PRIMARY KEY (user_id, thumbprint)
        ) STRICT;
        CREATE INDEX IF NOT EXISTS audit_by_subject ON audit (subject, id);
        """;

    // Version 8, on its own: applied to every database (IF NOT EXISTS), whatever version it comes from.
    private const string AttestationSchema = """
        CREATE TABLE IF NOT EXISTS attestation_challenges (
            challenge   TEXT PRIMARY KEY NOT NULL,
            issuer      TEXT NOT NULL,
            subject     TEXT NOT NULL,
            expires_at  INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX IF NOT EXISTS attestation_challenges_by_expiry ON attestation_challenges (expires_at);
        CREATE TABLE IF NOT EXISTS device_attestations (
            thumbprint       TEXT PRIMARY KEY NOT NULL,
            format           TEXT NOT NULL,
            policy           TEXT NOT NULL,
            device_key       BLOB NOT NULL,
            certificates     TEXT,
            challenge        BLOB,
            key_id           BLOB,
            attested_key     BLOB,
            app_id           TEXT,
            environment      TEXT,
            counter          INTEGER NOT NULL,
            verified_at      INTEGER NOT NULL,
            reverified_at    INTEGER,
            rejected_at      INTEGER,
            rejected_reason  TEXT
        ) STRICT;
        """;

    private const string MigrateToVersion3 = """
        ALTER TABLE licences ADD COLUMN claim TEXT NOT NULL DEFAULT 'credential';
        ALTER TABLE licences ADD COLUMN issuer TEXT;
        ALTER TABLE audit ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE audit ADD COLUMN issuer TEXT;
        ALTER TABLE audit ADD COLUMN attributes TEXT;
        """;

    private readonly string _connectionString;
    private readonly string _path;

    public SqliteStore(string databasePath)
    {
        _path = databasePath;
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = databasePath,
            Mode = SqliteOpenMode.ReadWrite,
            Cache = SqliteCacheMode.Private,
            ForeignKeys = true,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
    }

    public override string Description => $"SQLite database '{_path}'";

    /// <summary>Creates or checks the schema; switches the database to WAL.</summary>
    public override void Initialize()
    {
        using DbConnection connection = Open();
        string? mode = Scalar(connection, null, "PRAGMA journal_mode = WAL;") as string;
        if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
        {
            throw new ServerConfigurationException($"The database could not be switched to WAL mode (got '{mode}').");
        }

        using DbTransaction transaction = ((SqliteConnection)connection).BeginTransaction(deferred: false);
        long version = Convert.ToInt64(Scalar(connection, transaction, "PRAGMA user_version;"), CultureInfo.InvariantCulture);
        if (version > SchemaVersion)
        {
            throw new ServerConfigurationException(string.Create(CultureInfo.InvariantCulture, $"The database has schema version {version}; this server knows version {SchemaVersion}. Use a newer ModelSeal server."));
        }

        if (version == 1)
        {
            // Version 1 had no hash chain: add the column (the existing records are chained below). The update trigger
            // is dropped for this and created again by the schema.
            Execute(connection, transaction, "ALTER TABLE audit ADD COLUMN hash BLOB; DROP TRIGGER IF EXISTS audit_no_update;");
        }

        if (version is 1 or 2)
        {
            // Version 3: every existing licence is claimed by its credential only, every existing record keeps format 1.
            Execute(connection, transaction, MigrateToVersion3);
        }

        if (version is >= 1 and < 8 && Convert.ToInt64(Scalar(connection, transaction, "SELECT COUNT(*) FROM pragma_table_info('licences') WHERE name = 'attestation_policy';"), CultureInfo.InvariantCulture) == 0)
        {
            // Version 8: the licences of an earlier version have no attestation policy.
            Execute(connection, transaction, "ALTER TABLE licences ADD COLUMN attestation_policy TEXT;");
        }

        if (version == 1)
        {
            new AuditWrites(new DbSession(connection, transaction)).ChainUnhashed();
        }

        Execute(connection, transaction, Schema);
        Execute(connection, transaction, AuditCheckpointsSchema);
        Execute(connection, transaction, UsersSchema);
        Execute(connection, transaction, AttestationSchema);
        Execute(connection, transaction, string.Create(CultureInfo.InvariantCulture, $"PRAGMA user_version = {SchemaVersion};"));
        transaction.Commit();
    }

    protected override DbConnection Open()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        return connection;
    }

    protected override DbTransaction BeginWrite(DbConnection connection)
    {
        // Durable commits, whatever the SQLite build's default: in WAL mode FULL syncs the WAL at every commit.
        Execute(connection, null, "PRAGMA synchronous = FULL;");
        return ((SqliteConnection)connection).BeginTransaction(deferred: false);
    }

    // secure_delete overwrites the freed bytes in the database file instead of leaving them in free pages.
    internal override void BeforeDestroy(DbSession session) => session.NonQuery("PRAGMA secure_delete = ON");

    public override string ErrorCode(DbException exception) =>
        exception is SqliteException sqlite ? string.Create(CultureInfo.InvariantCulture, $"SQLite error {sqlite.SqliteErrorCode}") : base.ErrorCode(exception);

    /// <summary>The <c>PRAGMA synchronous</c> a write transaction runs with (2 = FULL).</summary>
    internal Task<long> SynchronousAsync(CancellationToken cancellationToken) =>
        WriteAsync(s => s.Db.Count("PRAGMA synchronous"), cancellationToken);

    protected override void Compact(DbConnection connection) => Execute(connection, null, "PRAGMA wal_checkpoint(TRUNCATE);");

    protected override void ClearPools()
    {
        using var connection = new SqliteConnection(_connectionString);
        SqliteConnection.ClearPool(connection);
    }
}
