using System.Data.Common;

namespace ModelSeal.Server.Storage;

/// <summary>One connection (and, for writes, its transaction) and the plain parameterised SQL every query runs through.</summary>
internal sealed class DbSession(DbConnection connection, DbTransaction? transaction)
{
    public DbCommand Command(string sql, params ReadOnlySpan<(string Name, object? Value)> parameters)
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

    public void NonQuery(string sql, params ReadOnlySpan<(string Name, object? Value)> parameters)
    {
        using DbCommand command = Command(sql, parameters);
        command.ExecuteNonQuery();
    }

    public bool Exists(string sql, params ReadOnlySpan<(string Name, object? Value)> parameters)
    {
        using DbCommand command = Command(sql, parameters);
        return command.ExecuteScalar() is not null;
    }

    public long Count(string sql, params ReadOnlySpan<(string Name, object? Value)> parameters)
    {
        using DbCommand command = Command(sql, parameters);
        return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Every row of a query, each read by <paramref name="read"/>.</summary>
    public List<T> List<T>(Func<DbDataReader, T> read, string sql, params ReadOnlySpan<(string Name, object? Value)> parameters)
    {
        using DbCommand command = Command(sql, parameters);
        using DbDataReader reader = command.ExecuteReader();
        var rows = new List<T>();
        while (reader.Read())
        {
            rows.Add(read(reader));
        }

        return rows;
    }

    public static long Seconds(DateTimeOffset time) => time.ToUnixTimeSeconds();

    public static DateTimeOffset Time(long seconds) => DateTimeOffset.FromUnixTimeSeconds(seconds);

    public static string? NullableString(DbDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);
}

/// <summary>A read on its own connection: queries only, nothing that writes.</summary>
internal sealed class ReadSession(DbSession db)
{
    public ModelReads Models { get; } = new(db);

    public LicenceReads Licences { get; } = new(db);

    public DeviceReads Devices { get; } = new(db);

    public UserReads Users { get; } = new(db);

    public AttestationReads Attestations { get; } = new(db);

    public AuditReads Audit { get; } = new(db);

    public SnapshotQueries Snapshot { get; } = new(db);

    public AdminCredentialReads AdminCredential { get; } = new(db);

    public MasterKeyReads MasterKey { get; } = new(db);
}

/// <summary>A write inside the writer's transaction (<see cref="Store.WriteAsync"/>): the queries and the changes.</summary>
internal sealed class WriteSession(DbSession db, Store store)
{
    public ModelWrites Models { get; } = new(db, store);

    public LicenceWrites Licences { get; } = new(db);

    public DeviceWrites Devices { get; } = new(db);

    public UserWrites Users { get; } = new(db);

    public AttestationWrites Attestations { get; } = new(db);

    public AuditWrites Audit { get; } = new(db);

    public SnapshotQueries Snapshot { get; } = new(db);

    public AdminCredentialWrites AdminCredential { get; } = new(db);

    public MasterKeyWrites MasterKey { get; } = new(db);

    /// <summary>The connection and transaction (for provider-specific statements of the store itself).</summary>
    internal DbSession Db { get; } = db;
}
