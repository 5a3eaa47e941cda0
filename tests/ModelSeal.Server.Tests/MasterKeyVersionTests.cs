using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.MasterKeys;

namespace ModelSeal.Server.Tests;

/// <summary>
/// The master-key version that wraps new data keys is the one the database records, never merely the highest the
/// token or master.keys holds: anyone with the token's user PIN (or write access to master.keys) could add a
/// <c>&lt;label&gt;-vN</c> there. A rotation moves the record in its transaction; an older database adopts once.
/// </summary>
[Trait("Backends", "own")]
public sealed class MasterKeyVersionTests
{
    [Fact]
    public async Task A_version_added_to_master_keys_by_hand_never_wraps_and_a_rotation_moves_the_record()
    {
        using var directory = new TempDirectory();
        string data = directory.Sub("data");
        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data))
        {
            string admin = await FirstVersionAsync(server);
            Assert.Equal(1L, server.Database.Count("SELECT version FROM master_key"));
        }

        // v2, whose value whoever added it knows.
        AddByHand(data, 2);
        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data))
        {
            Assert.Equal(1, server.App.Services.GetRequiredService<MasterKeyRing>().CurrentVersion);
            Assert.Contains(server.Logs.Lines, line => line.Contains("hold v2, above v1", StringComparison.Ordinal) && line.Contains("ignored", StringComparison.Ordinal));
            string admin = await server.AdminTokenAsync();
            await NewVersionAsync(server, admin);
            Assert.Equal(1L, WrappedWith(server, "2"));

            // A rotation never reuses v2: it adds v3, rewraps everything with it and records it.
            Api rotated = await server.PostAsync("/v1/admin/master-key/rotate", null, admin);
            rotated.AssertStatus(HttpStatusCode.OK);
            Assert.Equal(3, rotated.Json.GetProperty("masterKeyVersion").GetInt32());
            Assert.Equal(3L, server.Database.Count("SELECT version FROM master_key"));
            Assert.Equal(0L, server.Database.Count("SELECT COUNT(*) FROM model_versions WHERE master_key_version <> 3"));
        }

        // The record survives a restart.
        await AssertAfterRestartAsync(data, masterKeyVersion: 3, newVersion: "3");
    }

    [Fact]
    public async Task A_key_generated_in_the_token_as_the_next_version_never_wraps_until_the_database_records_it()
    {
        Pkcs11Token token = Services.RequirePkcs11();
        string label = "ver-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
        void Hsm(ServerOptions o) => o.MasterKey = new MasterKeyOptions
        {
            Provider = MasterKeyOptions.Pkcs11,
            Pkcs11Module = token.Module,
            TokenLabel = token.Label,
            KeyLabel = label,
            PinEnvironmentVariable = Services.Pkcs11PinVariable,
        };

        using var directory = new TempDirectory();
        string data = directory.Sub("data");
        await using (TestServer server = await TestServer.StartAsync(Hsm, data))
        {
            string admin = await FirstVersionAsync(server);

            // <label>-v2 appears in the token while the server runs (generated there, so it passes the attribute rule:
            // what another instance's rotation, or anyone with the user PIN, would add).
            using (Pkcs11MasterKeyProvider other = Pkcs11MasterKeyProvider.Open(token.Module, token.Label, label, Encoding.UTF8.GetBytes(token.Pin), mayCreate: false))
            {
                Assert.Equal(2, other.AddVersion());
            }

            await NewVersionAsync(server, admin);
            Assert.Equal(1L, WrappedWith(server, "2"));
            Assert.Contains(server.Logs.Lines, line => line.Contains("hold v2, above v1", StringComparison.Ordinal));

            // Once the database records v2 (another instance's rotation committed), this instance follows.
            server.Database.Execute("UPDATE master_key SET version = 2");
            await NewVersionAsync(server, admin);
            Assert.Equal(2L, WrappedWith(server, "3"));

            Assert.Equal(3, (await server.PostAsync("/v1/admin/master-key/rotate", null, admin)).Json.GetProperty("masterKeyVersion").GetInt32());
        }

        await using (TestServer server = await TestServer.StartAsync(Hsm, data))
        {
            Assert.Equal(3, server.App.Services.GetRequiredService<MasterKeyRing>().CurrentVersion);
            Assert.Equal(3L, server.Database.Count("SELECT version FROM master_key"));
        }
    }

    [Fact]
    [Trait("Store", "sqlite")]
    public async Task A_database_of_an_older_server_records_the_providers_version_once_at_upgrade()
    {
        using var directory = new TempDirectory();
        string data = directory.Sub("data");
        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data))
        {
            string admin = await FirstVersionAsync(server);
            (await server.PostAsync("/v1/admin/master-key/rotate", null, admin)).AssertStatus(HttpStatusCode.OK);
        }

        // Back to schema version 4: no record.
        new TestDatabase(new ServerOptions { DataDirectory = data }).Execute("DROP TABLE master_key; PRAGMA user_version = 4;");

        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data))
        {
            Assert.Equal(8L, server.Database.Count("PRAGMA user_version"));
            Assert.Equal(2L, server.Database.Count("SELECT version FROM master_key"));
            Assert.Contains(server.Logs.Lines, line => line.Contains("recorded no master-key version", StringComparison.Ordinal) && line.Contains("recorded v2", StringComparison.Ordinal));
        }

        // Adopted once: a version added afterwards is not.
        AddByHand(data, 3);
        await AssertAfterRestartAsync(data, masterKeyVersion: 2, newVersion: "2");
    }

    [Fact]
    public async Task A_recorded_version_the_master_keys_do_not_hold_is_refused_while_data_keys_depend_on_it()
    {
        using var directory = new TempDirectory();
        string data = directory.Sub("data");
        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data))
        {
            string admin = await FirstVersionAsync(server);
            server.Database.Execute("UPDATE master_key SET version = 7");
        }

        var options = new ServerOptions { DataDirectory = data };
        TestBackends.Apply(options);
        ServerConfigurationException e = Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(options));
        Assert.Contains("records master key v7", e.Message, StringComparison.Ordinal);
    }

    /// <summary>Adds master key v<paramref name="version"/> to master.keys, as someone who can write the file (and knows the key) could.</summary>
    private static void AddByHand(string data, int version) =>
        File.AppendAllText(Path.Combine(data, "master.keys"), $"v{version} {Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32))}\n");

    /// <summary>Restarts on <paramref name="data"/>: the ring wraps with the version expected, and so does a new model version.</summary>
    private static async Task AssertAfterRestartAsync(string data, int masterKeyVersion, string newVersion)
    {
        await using TestServer server = await TestServer.StartAsync(dataDirectory: data);
        Assert.Equal(masterKeyVersion, server.App.Services.GetRequiredService<MasterKeyRing>().CurrentVersion);
        await NewVersionAsync(server, await server.AdminTokenAsync());
        Assert.Equal(masterKeyVersion, WrappedWith(server, newVersion));
    }

    /// <summary>Creates model m and its first version; returns the admin token.</summary>
    private static async Task<string> FirstVersionAsync(TestServer server)
    {
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        await NewVersionAsync(server, admin);
        return admin;
    }

    private static async Task NewVersionAsync(TestServer server, string admin) => (await server.CreateVersionAsync(admin, "m")).Key.Dispose();

    private static long WrappedWith(TestServer server, string version) =>
        server.Database.Count($"SELECT master_key_version FROM model_versions WHERE model_id = 'm' AND version = '{version}'");
}
