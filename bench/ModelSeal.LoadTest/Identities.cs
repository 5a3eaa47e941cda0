using System.Buffers.Text;
using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace ModelSeal.LoadTest;

/// <summary>
/// The external identity provider of <c>--tokens idp</c>: an ES256 key whose JWKS the server reads from a file, and the
/// RFC 9068 access tokens it mints for the clients' users (what an app's own sign-in hands the client runtime).
/// </summary>
internal sealed class ExternalIssuer(ECDsa key, string audience)
{
    public const string Issuer = "https://idp.loadtest.invalid/";

    public const string RuleName = "loadtest";

    private const string KeyId = "loadtest-idp-1";

    /// <summary>The JWKS file the server is configured with.</summary>
    public static string Jwks(ECDsa key)
    {
        ECParameters p = key.ExportParameters(includePrivateParameters: false);
        return JsonSerializer.Serialize(new { keys = new[] { new { kty = "EC", crv = "P-256", x = Base64Url.EncodeToString(p.Q.X), y = Base64Url.EncodeToString(p.Q.Y), kid = KeyId, use = "sig", alg = "ES256" } } });
    }

    /// <summary>An access token for <paramref name="subject"/> valid for 12 hours (the whole run).</summary>
    public string Token(string subject)
    {
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string header = Part(new { alg = "ES256", kid = KeyId, typ = "at+jwt" });
        string payload = Part(new { iss = Issuer, sub = subject, aud = audience, client_id = "loadtest-app", scope = "openid keys", iat = now, exp = now + (12 * 3600), jti = Guid.NewGuid().ToString("N") });
        string signingInput = header + "." + payload;
        byte[] signature = key.SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        return signingInput + "." + Base64Url.EncodeToString(signature);
    }

    private static string Part(object value) => Base64Url.EncodeToString(JsonSerializer.SerializeToUtf8Bytes(value));
}

/// <summary>
/// <c>--seed-users</c>: synthetic users of another issuer and their devices, inserted with one SQL statement per table
/// before the run, so that the users and user_devices tables (and their indexes) are as large as a big deployment's
/// while the load test's own users are looked up in them.
/// </summary>
internal static class SyntheticUsers
{
    private const string Issuer = "https://synthetic.loadtest.invalid/";

    public static async Task<string> InsertAsync(LoadTestOptions options, string? sqlitePath, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        await using DbConnection connection = sqlitePath is not null
            ? new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = sqlitePath, Pooling = false, DefaultTimeout = 600 }.ToString())
            : new NpgsqlConnection(Environment.GetEnvironmentVariable(options.PostgresVariable!) ?? throw new LoadTestException($"${options.PostgresVariable} is not set."));
        await connection.OpenAsync(cancellationToken);
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        int second = options.SeedDevices - options.SeedUsers;
        await using (DbTransaction transaction = await connection.BeginTransactionAsync(cancellationToken))
        {
            // WITH RECURSIVE counts in both SQLite and PostgreSQL; user ids are left to the database (identity/autoincrement).
            await ExecuteAsync(connection, transaction, $"""
                INSERT INTO users (issuer, subject, created_at, last_seen)
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {options.SeedUsers})
                SELECT '{Issuer}', 'synthetic-user-' || i, {now}, {now} FROM n
                """, cancellationToken);
            await ExecuteAsync(connection, transaction, $"""
                INSERT INTO user_devices (user_id, thumbprint, first_seen, last_seen, rule)
                SELECT user_id, 'synthetic-device-a-' || user_id, {now}, {now}, 'synthetic' FROM users WHERE issuer = '{Issuer}'
                """, cancellationToken);
            await ExecuteAsync(connection, transaction, $"""
                INSERT INTO user_devices (user_id, thumbprint, first_seen, last_seen, rule)
                SELECT user_id, 'synthetic-device-b-' || user_id, {now}, {now}, 'synthetic' FROM users WHERE issuer = '{Issuer}' ORDER BY user_id LIMIT {second}
                """, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        // Statistics, as a database that grew to this size would have them.
        await ExecuteAsync(connection, null, "ANALYZE", cancellationToken);
        return string.Create(CultureInfo.InvariantCulture, $"{options.SeedUsers:N0} synthetic users and {options.SeedDevices:N0} devices of another issuer, inserted in {clock.Elapsed.TotalSeconds:F0} s before the run");
    }

    private static async Task ExecuteAsync(DbConnection connection, DbTransaction? transaction, string sql, CancellationToken cancellationToken)
    {
        await using DbCommand command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandTimeout = 600;
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
