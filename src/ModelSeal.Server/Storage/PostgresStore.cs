using System.Data.Common;
using System.Globalization;
using ModelSeal.Server.Configuration;
using Npgsql;

namespace ModelSeal.Server.Storage;

/// <summary>
/// The production store: PostgreSQL (14 or newer) through Npgsql, shared by any number of server instances. The
/// tables live in the connection's current schema (the first existing schema of its search path). Two advisory locks,
/// keyed by that schema, serialise what must not interleave across instances: migrations (a session lock held while
/// the schema is created or upgraded, so instances starting together take turns) and write transactions (a
/// transaction lock taken first in each, so that device counts, revocation checks and the audit chain see every
/// write committed before them, exactly as with SQLite's single writer).
/// </summary>
internal sealed class PostgresStore : Store
{
    // 2: the first PostgreSQL schema, with the audit hash chain (the same tables as SQLite's version 2). 3: how a
    // licence is claimed, the audit record's format, issuer and attributes (as SQLite's version 3). 4: admin_credential,
    // the admin credential's hash and epoch (as SQLite's version 4). 5: master_key, the master-key version that wraps
    // new data keys (as SQLite's version 5). 6: audit_checkpoints (as SQLite's version 6). 7: users, user_devices and
    // the audit log's index by subject (as SQLite's version 7). 8: licences.attestation_policy, attestation_challenges
    // and device_attestations (as SQLite's version 8).
    private const int SchemaVersion = 8;

    // Version 8, on its own: applied (IF NOT EXISTS) to every database, whatever version it comes from.
    private const string AttestationSchema = """
        ALTER TABLE licences ADD COLUMN IF NOT EXISTS attestation_policy text;
        CREATE TABLE IF NOT EXISTS attestation_challenges (
            challenge   text PRIMARY KEY,
            issuer      text NOT NULL,
            subject     text NOT NULL,
            expires_at  bigint NOT NULL
        );
        CREATE INDEX IF NOT EXISTS attestation_challenges_by_expiry ON attestation_challenges (expires_at);
        CREATE TABLE IF NOT EXISTS device_attestations (
            thumbprint       text PRIMARY KEY,
            format           text NOT NULL,
            policy           text NOT NULL,
            device_key       bytea NOT NULL,
            certificates     text,
            challenge        bytea,
            key_id           bytea,
            attested_key     bytea,
            app_id           text,
            environment      text,
            counter          bigint NOT NULL,
            verified_at      bigint NOT NULL,
            reverified_at    bigint,
            rejected_at      bigint,
            rejected_reason  text
        );
        """;

    // Version 7, on its own: applied (IF NOT EXISTS) to every database, whatever version it comes from.
    private const string UsersSchema = """
        CREATE TABLE IF NOT EXISTS users (
            user_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            issuer      text NOT NULL,
            subject     text NOT NULL,
            created_at  bigint NOT NULL,
            last_seen   bigint NOT NULL,
            blocked_at  bigint,
            UNIQUE (issuer, subject)
        );
        CREATE TABLE IF NOT EXISTS user_devices (
            user_id     bigint NOT NULL REFERENCES users(user_id),
            thumbprint  text NOT NULL,
            first_seen  bigint NOT NULL,
            last_seen   bigint NOT NULL,
            rule        text NOT NULL,
            PRIMARY KEY (user_id, thumbprint)
        );
        CREATE INDEX IF NOT EXISTS audit_by_subject ON audit (subject, id);
        """;

    // Version 6, on its own: applied (IF NOT EXISTS) to every database, whatever version it comes from.
    private const string AuditCheckpointsSchema = """
        CREATE TABLE IF NOT EXISTS audit_checkpoints (
            id          bigint PRIMARY KEY,
            records     bigint NOT NULL,
            last_id     bigint NOT NULL,
            last_hash   bytea NOT NULL,
            at          bigint NOT NULL,
            key_id      text NOT NULL,
            signature   bytea NOT NULL
        );
        CREATE OR REPLACE TRIGGER audit_checkpoints_no_update BEFORE UPDATE OR DELETE ON audit_checkpoints
        FOR EACH ROW EXECUTE FUNCTION audit_append_only();
        CREATE OR REPLACE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
        FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
        """;

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS schema_info (
            version  integer NOT NULL
        );
        CREATE TABLE IF NOT EXISTS models (
            model_id    text PRIMARY KEY,
            created_at  bigint NOT NULL
        );
        CREATE TABLE IF NOT EXISTS model_versions (
            seq                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            model_id            text NOT NULL REFERENCES models(model_id),
            version             text NOT NULL,
            key_id              text NOT NULL UNIQUE,
            state               text NOT NULL CHECK (state IN ('active', 'disabled', 'destroyed')),
            master_key_version  integer,
            wrapped_key         bytea,
            created_at          bigint NOT NULL,
            UNIQUE (model_id, version),
            CHECK ((state = 'destroyed') = (wrapped_key IS NULL))
        );
        CREATE TABLE IF NOT EXISTS licences (
            licence_id       text PRIMARY KEY,
            subject          text NOT NULL,
            models           text NOT NULL,
            not_before       bigint,
            expires_at       bigint,
            max_devices      integer NOT NULL CHECK (max_devices >= 1),
            created_at       bigint NOT NULL,
            revoked_at       bigint,
            credential_hash  bytea NOT NULL,
            rowid            bigint GENERATED ALWAYS AS IDENTITY UNIQUE
        );
        CREATE INDEX IF NOT EXISTS licences_by_subject ON licences (subject, created_at);
        CREATE TABLE IF NOT EXISTS devices (
            licence_id  text NOT NULL REFERENCES licences(licence_id),
            thumbprint  text NOT NULL,
            first_seen  bigint NOT NULL,
            last_seen   bigint NOT NULL,
            rowid       bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
            PRIMARY KEY (licence_id, thumbprint)
        );
        CREATE TABLE IF NOT EXISTS audit (
            id          bigint PRIMARY KEY,
            at          bigint NOT NULL,
            event       text NOT NULL,
            subject     text,
            licence_id  text,
            model_id    text,
            version     text,
            key_id      text,
            device      text,
            client      text,
            outcome     text NOT NULL,
            hash        bytea
        );
        ALTER TABLE licences ADD COLUMN IF NOT EXISTS claim text NOT NULL DEFAULT 'credential';
        ALTER TABLE licences ADD COLUMN IF NOT EXISTS issuer text;
        CREATE INDEX IF NOT EXISTS licences_by_issuer_subject ON licences (issuer, subject, created_at);
        ALTER TABLE audit ADD COLUMN IF NOT EXISTS format integer NOT NULL DEFAULT 1;
        ALTER TABLE audit ADD COLUMN IF NOT EXISTS issuer text;
        ALTER TABLE audit ADD COLUMN IF NOT EXISTS attributes text;
        CREATE TABLE IF NOT EXISTS admin_credential (
            id               integer PRIMARY KEY CHECK (id = 1),
            credential_hash  bytea NOT NULL,
            epoch            bigint NOT NULL CHECK (epoch >= 1),
            updated_at       bigint NOT NULL
        );
        CREATE TABLE IF NOT EXISTS master_key (
            id          integer PRIMARY KEY CHECK (id = 1),
            version     integer NOT NULL CHECK (version >= 1),
            updated_at  bigint NOT NULL
        );
        CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
        CREATE OR REPLACE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION audit_append_only();
        CREATE OR REPLACE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
        """;

    private readonly NpgsqlDataSource _dataSource;
    private readonly string _description;
    private long _writeLock;

    public PostgresStore(string connectionString)
    {
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException e)
        {
            // The message of a connection-string parse error never repeats the string (it may hold a password).
            throw new ServerConfigurationException($"The PostgreSQL connection string is not valid: {e.Message}", e);
        }

        _description = string.Create(CultureInfo.InvariantCulture, $"PostgreSQL database '{builder.Database}' on {builder.Host}:{builder.Port}");
        _dataSource = NpgsqlDataSource.Create(builder);
    }

    public override string Description => _description;

    /// <summary>
    /// Creates or checks the schema under the migration lock, so that instances starting at once take turns: the
    /// first creates the tables, the others find them made.
    /// </summary>
    public override void Initialize()
    {
        using DbConnection connection = Open();
        if (Scalar(connection, null, "SELECT current_schema()") is not string schema)
        {
            throw new ServerConfigurationException($"The {_description} has no schema to create the tables in: the connection's search path names no existing schema. Create the schema, or fix 'Search Path' in the connection string.");
        }

        if (Scalar(connection, null, "SHOW server_version_num") is string number && int.Parse(number, CultureInfo.InvariantCulture) < 140000)
        {
            throw new ServerConfigurationException($"The {_description} runs PostgreSQL {number}; the key server needs PostgreSQL 14 or newer.");
        }

        long migrationLock = LockKey("migrate", schema);
        _writeLock = LockKey("write", schema);
        Execute(connection, null, string.Create(CultureInfo.InvariantCulture, $"SELECT pg_advisory_lock({migrationLock})"));
        try
        {
            using DbTransaction transaction = connection.BeginTransaction();
            bool exists = Scalar(connection, transaction, "SELECT to_regclass('schema_info') IS NOT NULL") is true;
            long? version = exists ? Convert.ToInt64(Scalar(connection, transaction, "SELECT max(version) FROM schema_info") ?? 0L, CultureInfo.InvariantCulture) : null;
            if (version > SchemaVersion)
            {
                throw new ServerConfigurationException(string.Create(CultureInfo.InvariantCulture, $"The {_description} has schema version {version}; this server knows version {SchemaVersion}. Use a newer ModelSeal server."));
            }

            if (version != SchemaVersion)
            {
                Execute(connection, transaction, Schema);
                Execute(connection, transaction, AuditCheckpointsSchema);
                Execute(connection, transaction, UsersSchema);
                Execute(connection, transaction, AttestationSchema);
                Execute(connection, transaction, string.Create(CultureInfo.InvariantCulture, $"DELETE FROM schema_info; INSERT INTO schema_info (version) VALUES ({SchemaVersion});"));
            }

            transaction.Commit();
        }
        finally
        {
            Execute(connection, null, string.Create(CultureInfo.InvariantCulture, $"SELECT pg_advisory_unlock({migrationLock})"));
        }
    }

    protected override DbConnection Open() => _dataSource.OpenConnection();

    // model_versions.seq and users.user_id are GENERATED ALWAYS: the imported numbers need OVERRIDING SYSTEM VALUE,
    // then each sequence continues after the largest.
    internal override void Import(WriteSession session, StoreSnapshot snapshot)
    {
        session.Snapshot.Import(snapshot, identityInsert: "OVERRIDING SYSTEM VALUE");
        session.Db.NonQuery("SELECT setval(pg_get_serial_sequence('model_versions', 'seq'), COALESCE(MAX(seq), 1), MAX(seq) IS NOT NULL) FROM model_versions");
        session.Db.NonQuery("SELECT setval(pg_get_serial_sequence('users', 'user_id'), COALESCE(MAX(user_id), 1), MAX(user_id) IS NOT NULL) FROM users");
    }

    protected override DbTransaction BeginWrite(DbConnection connection)
    {
        DbTransaction transaction = connection.BeginTransaction();
        Execute(connection, transaction, string.Create(CultureInfo.InvariantCulture, $"SELECT pg_advisory_xact_lock({_writeLock})"));
        return transaction;
    }

    // VACUUM frees the dead row versions that still hold a destroyed version's wrapped key for reuse (it does not
    // overwrite them; docs/deploy.md says what remains in WAL archives and backups).
    protected override void Compact(DbConnection connection) => Execute(connection, null, "VACUUM model_versions");

    protected override void ClearPools() => _dataSource.Dispose();

    /// <summary>An advisory-lock key for <paramref name="purpose"/> in <paramref name="schema"/>: the first 8 bytes of a SHA-256.</summary>
    private static long LockKey(string purpose, string schema)
    {
        byte[] hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"modelseal:{purpose}:{schema}"));
        return System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(hash);
    }
}
