using System.Net;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;
using ModelSeal.Server.Storage;
using Npgsql;

namespace ModelSeal.Server.Tests;

/// <summary>
/// The PostgreSQL store's own concerns: migrations when instances start together, configuration errors, and master-key
/// rotation seen across instances that share a PKCS#11 token.
/// </summary>
[Trait("Backends", "own")]
public sealed class PostgresStoreTests
{
    [Fact]
    public async Task Instances_starting_at_once_create_the_schema_once_and_a_newer_schema_is_refused()
    {
        using var directory = new TempDirectory();
        string connection = PostgresSchema.ConnectionString(directory.Path, create: true);
        PostgresStore[] stores = [.. Enumerable.Range(0, 4).Select(_ => new PostgresStore(connection))];
        try
        {
            await Task.WhenAll(stores.Select(store => Task.Run(store.Initialize, TestContext.Current.CancellationToken)));
            Assert.All(stores, store => Assert.Equal(0, store.Read(s => s.Models.Count())));
        }
        finally
        {
            foreach (PostgresStore store in stores)
            {
                store.Dispose();
            }
        }

        await using (NpgsqlDataSource database = NpgsqlDataSource.Create(connection))
        {
            await using NpgsqlCommand versions = database.CreateCommand("SELECT string_agg(version::text, ',') FROM schema_info");
            Assert.Equal("8", await versions.ExecuteScalarAsync(TestContext.Current.CancellationToken));
            await using NpgsqlCommand newer = database.CreateCommand("UPDATE schema_info SET version = 9");
            await newer.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
        }

        using var later = new PostgresStore(connection);
        var e = Assert.Throws<ServerConfigurationException>(later.Initialize);
        Assert.Contains("schema version 9", e.Message, StringComparison.Ordinal);
        Assert.Contains("newer ModelSeal server", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_search_path_without_an_existing_schema_is_refused_with_what_to_fix()
    {
        var builder = new NpgsqlConnectionStringBuilder(Services.RequirePostgres()) { SearchPath = "no_such_schema_" + Guid.NewGuid().ToString("N") };
        using var store = new PostgresStore(builder.ConnectionString);
        var e = Assert.Throws<ServerConfigurationException>(store.Initialize);
        Assert.Contains("search path", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(builder.Password!, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Database_configuration_that_cannot_work_is_refused_on_start()
    {
        using var directory = new TempDirectory();
        void Refused(Action<DatabaseOptions> configure, string expected, string? secret = null)
        {
            var options = new ServerOptions { DataDirectory = directory.Sub("data"), Urls = "http://127.0.0.1:0" };
            configure(options.Database);
            var e = Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(options));
            Assert.Contains(expected, e.Message, StringComparison.Ordinal);
            if (secret is not null)
            {
                Assert.DoesNotContain(secret, e.Message, StringComparison.Ordinal);
            }
        }

        Refused(d => d.Provider = "mysql", "Unknown database provider 'mysql'");
        Refused(d => d.ConnectionString = "Host=db", "the provider is 'sqlite'");
        Refused(d => d.Provider = DatabaseOptions.Postgres, "exactly one of");
        Refused(
            d =>
            {
                d.Provider = DatabaseOptions.Postgres;
                d.ConnectionString = "Host=db";
                d.ConnectionStringEnvironmentVariable = "X";
            },
            "exactly one of");
        string unset = "MODELSEAL_TEST_UNSET_" + Guid.NewGuid().ToString("N");
        Refused(
            d =>
            {
                d.Provider = DatabaseOptions.Postgres;
                d.ConnectionStringEnvironmentVariable = unset;
            },
            unset);
        Refused(
            d =>
            {
                d.Provider = DatabaseOptions.Postgres;
                d.ConnectionString = "Host=db;Password=hunter2-secret;Port=not-a-number";
            },
            "connection string is not valid",
            secret: "hunter2-secret");

        // A database that does not answer: the error names it (without the password) and says what failed.
        Refused(
            d =>
            {
                d.Provider = DatabaseOptions.Postgres;
                d.ConnectionString = "Host=127.0.0.1;Port=1;Database=nowhere;Username=u;Password=hunter2-secret;Timeout=2";
            },
            "PostgreSQL database 'nowhere' on 127.0.0.1:1 could not be opened",
            secret: "hunter2-secret");
    }

    [Fact]
    public async Task A_master_key_rotated_through_one_instance_is_used_by_the_other_sharing_the_token()
    {
        Pkcs11Token token = Services.RequirePkcs11();
        using var directory = new TempDirectory();
        string connection = PostgresSchema.ConnectionString(directory.Path, create: true);
        string label = "shared-" + Guid.NewGuid().ToString("N")[..12];
        void Configure(ServerOptions options)
        {
            options.Database.Provider = DatabaseOptions.Postgres;
            options.Database.ConnectionString = connection;
            options.MasterKey.Provider = MasterKeyOptions.Pkcs11;
            options.MasterKey.Pkcs11Module = token.Module;
            options.MasterKey.TokenLabel = token.Label;
            options.MasterKey.KeyLabel = label;
            options.MasterKey.PinEnvironmentVariable = Services.Pkcs11PinVariable;
        }

        await using TestServer a = await TestServer.StartAsync(Configure, directory.Sub("a"));
        ServerProcess.ShareSecrets(directory.Sub("a"), directory.Sub("b"));
        await using TestServer b = await TestServer.StartAsync(Configure, directory.Sub("b"));
        string adminA = await a.AdminTokenAsync();
        string adminB = await b.AdminTokenAsync();
        await a.CreateModelAsync(adminA, "m");
        (_, ModelKey first) = await a.CreateVersionAsync(adminA, "m");
        byte[] firstKey = TestServer.KeyBytes(first);
        first.Dispose();
        Licence licence = await a.CreateLicenceAsync(adminA, "s", ["m"]);
        string licenceToken = await b.LicenceTokenAsync(licence);
        using HpkeKeyPair device = HpkeKeyPair.Generate();

        // A rotates: version 1 is rewrapped under v2, which B has never seen; B finds it in the token.
        Api rotated = await a.PostAsync("/v1/admin/master-key/rotate", null, adminA);
        Assert.Equal(2, rotated.Json.GetProperty("masterKeyVersion").GetInt32());
        using (ModelKey released = (await b.ReleaseAndOpenAsync(licenceToken, licence, "m", "1", device)).Key)
        {
            Assert.Equal(firstKey, TestServer.KeyBytes(released));
        }

        // B wraps new keys with v2, and its own rotation makes v3 (not a second v2).
        (await b.CreateVersionAsync(adminB, "m")).Key.Dispose();
        Assert.Equal(2, b.Database.Count("SELECT master_key_version FROM model_versions WHERE version = '2'"));
        rotated = await b.PostAsync("/v1/admin/master-key/rotate", null, adminB);
        Assert.Equal(3, rotated.Json.GetProperty("masterKeyVersion").GetInt32());
        Assert.Equal(2, rotated.Json.GetProperty("rewrapped").GetInt32());
        (await a.ReleaseAsync(licenceToken, "m", "2", device)).AssertStatus(HttpStatusCode.OK);
        (await a.ReleaseAsync(licenceToken, "m", "1", device)).AssertStatus(HttpStatusCode.OK);
    }
}
