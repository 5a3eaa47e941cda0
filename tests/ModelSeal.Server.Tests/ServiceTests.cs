using Npgsql;

namespace ModelSeal.Server.Tests;

/// <summary>The services .ci/run starts are there and usable (skipped locally unless configured).</summary>
[Trait("Backends", "own")]
public sealed class ServiceTests
{
    [Fact]
    public async Task The_PostgreSQL_test_database_accepts_connections()
    {
        string connectionString = Services.RequirePostgres();
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(TestContext.Current.CancellationToken);
        await using NpgsqlCommand command = new("SELECT current_database(), inet_server_addr()::text", connection);
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(TestContext.Current.CancellationToken);
        Assert.True(await reader.ReadAsync(TestContext.Current.CancellationToken));
        Assert.False(string.IsNullOrEmpty(reader.GetString(0)));
    }
}
