using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Data.Sqlite;
using ModelSeal.Server.Configuration;
using Npgsql;

namespace ModelSeal.Server.Tests;

/// <summary>
/// Which database and master-key provider <see cref="TestServer"/> uses: SQLite and the key file by default;
/// PostgreSQL with <c>MODELSEAL_TEST_STORE=postgres</c> and a PKCS#11 token with <c>MODELSEAL_TEST_MASTER_KEY=pkcs11</c>
/// (<c>.ci/run</c> runs the key-server suite a second time so). Tests that are about SQLite's files or the key file
/// carry the traits <c>Store=sqlite</c> or <c>MasterKey=file</c>, and tests that choose their backends themselves
/// <c>Backends=own</c>; that second run leaves them out.
/// </summary>
internal static class TestBackends
{
    public const string StoreVariable = "MODELSEAL_TEST_STORE";
    public const string MasterKeyVariable = "MODELSEAL_TEST_MASTER_KEY";

    public static bool Postgres => string.Equals(Environment.GetEnvironmentVariable(StoreVariable), "postgres", StringComparison.Ordinal);

    public static bool Pkcs11 => string.Equals(Environment.GetEnvironmentVariable(MasterKeyVariable), "pkcs11", StringComparison.Ordinal);

    /// <summary>Points options still on the defaults at the selected backends, with state of their own per data directory.</summary>
    public static void Apply(ServerOptions options)
    {
        if (Postgres && options.Database.Provider == DatabaseOptions.Sqlite)
        {
            options.Database.Provider = DatabaseOptions.Postgres;
            options.Database.ConnectionString = PostgresSchema.ConnectionString(options.DataDirectory, create: true);
        }

        if (Pkcs11 && options.MasterKey.Provider == MasterKeyOptions.File)
        {
            Pkcs11Token token = Services.RequirePkcs11();
            options.MasterKey.Provider = MasterKeyOptions.Pkcs11;
            options.MasterKey.Pkcs11Module = token.Module;
            options.MasterKey.TokenLabel = token.Label;
            options.MasterKey.PinEnvironmentVariable = Services.Pkcs11PinVariable;
            options.MasterKey.KeyLabel = "test-" + PostgresSchema.Name(options.DataDirectory);
        }
    }
}

/// <summary>A PostgreSQL schema of its own per data directory (so a restart finds its data again), in the CI database.</summary>
internal static class PostgresSchema
{
    public static string Name(string dataDirectory) =>
        "t" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(dataDirectory))))[..24];

    public static string ConnectionString(string dataDirectory, bool create)
    {
        var builder = new NpgsqlConnectionStringBuilder(Services.RequirePostgres()) { MaxPoolSize = 20 };
        string schema = Name(dataDirectory);
        if (create)
        {
            using var connection = new NpgsqlConnection(builder.ConnectionString);
            connection.Open();
            using var command = new NpgsqlCommand($"CREATE SCHEMA IF NOT EXISTS {schema}", connection);
            command.ExecuteNonQuery();
        }

        builder.SearchPath = schema;
        return builder.ConnectionString;
    }
}

/// <summary>Direct access to a test server's database (SQLite file or PostgreSQL schema), bypassing the server.</summary>
internal sealed class TestDatabase(ServerOptions options)
{
    public bool IsPostgres { get; } = options.Database.Provider == DatabaseOptions.Postgres;

    public long Count(string sql) => Convert.ToInt64(Run(sql, c => c.ExecuteScalar()), System.Globalization.CultureInfo.InvariantCulture);

    public T? Scalar<T>(string sql) => (T?)Run(sql, c => c.ExecuteScalar());

    public int Execute(string sql) => (int)Run(sql, c => c.ExecuteNonQuery())!;

    /// <summary>Runs <paramref name="sql"/> with the audit log's append-only protection switched off, as its owner could.</summary>
    public int Tamper(string sql) => IsPostgres
        ? Execute("ALTER TABLE audit DISABLE TRIGGER USER; " + sql + " ALTER TABLE audit ENABLE TRIGGER USER;")
        : Execute("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; " + sql);

    /// <summary>Removes a PostgreSQL test schema (nothing for SQLite: the directory goes).</summary>
    public void Drop()
    {
        if (IsPostgres)
        {
            Execute($"DROP SCHEMA {PostgresSchema.Name(options.DataDirectory)} CASCADE");
        }
    }

    private object? Run(string sql, Func<DbCommand, object?> run)
    {
        using DbConnection connection = IsPostgres
            ? new NpgsqlConnection(options.Database.ConnectionString)
            : new SqliteConnection($"Data Source={Path.Combine(options.DataDirectory, "modelseal.db")};Pooling=False");
        connection.Open();
        using DbCommand command = connection.CreateCommand();
        command.CommandText = sql;
        return run(command);
    }
}
