using System.Net;
using System.Text.Json;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;

namespace ModelSeal.Server.Tests;

/// <summary>Moving the data keys from master.keys into a PKCS#11 token and back (docs/deploy.md "Moving to an HSM").</summary>
[Trait("Backends", "own")]
public sealed class MasterKeyMigrationTests
{
    [Fact]
    public async Task Keys_move_from_the_file_into_the_token_and_back_and_still_open_the_same()
    {
        Pkcs11Token token = Services.RequirePkcs11();
        using var directory = new TempDirectory();
        string data = directory.Sub("data");
        var hsm = new MasterKeyOptions
        {
            Provider = MasterKeyOptions.Pkcs11,
            Pkcs11Module = token.Module,
            TokenLabel = token.Label,
            KeyLabel = "migrated-" + Guid.NewGuid().ToString("N")[..12],
            PinEnvironmentVariable = Services.Pkcs11PinVariable,
        };
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        byte[] expected;
        Licence licence;
        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data))
        {
            string admin = await server.AdminTokenAsync();
            await server.CreateModelAsync(admin, "m");
            (_, ModelKey created) = await server.CreateVersionAsync(admin, "m");
            expected = TestServer.KeyBytes(created);
            created.Dispose();
            (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
            licence = await server.CreateLicenceAsync(admin, "s", ["m"]);
            (await server.ReleaseAndOpenAsync(await server.LicenceTokenAsync(licence), licence, "m", "1", device)).Key.Dispose();

            // Not while a server holds the data directory.
            var busy = Assert.Throws<ServerConfigurationException>(() => MasterKeyMigration.Migrate(new ServerOptions { DataDirectory = data }, hsm));
            Assert.Contains("in use", busy.Message, StringComparison.Ordinal);
        }

        MasterKeyMigrationResult toHsm = MasterKeyMigration.Migrate(new ServerOptions { DataDirectory = data }, hsm);
        Assert.Equal(2, toHsm.Rewrapped);
        Assert.Equal(1, toHsm.MasterKeyVersion);
        Assert.False(File.Exists(Path.Combine(data, "master.keys")), "master.keys must not stay where a server would use it.");
        Assert.True(File.Exists(toHsm.RetiredMasterKeysFile), toHsm.RetiredMasterKeysFile);

        await using (TestServer server = await TestServer.StartAsync(o => o.MasterKey = hsm, data))
        {
            await AssertSameKeyAsync(server, licence, device, expected);
            string admin = await server.AdminTokenAsync();
            JsonElement chain = await AuditChainTests.VerifyAsync(server, admin);
            Assert.True(chain.GetProperty("verified").GetBoolean(), chain.ToString());
            JsonElement items = (await server.GetAsync("/v1/admin/audit?limit=500", admin)).Json.GetProperty("items");
            Assert.Contains(items.EnumerateArray(), i => i.GetProperty("event").GetString() == "master-key.migrated");
            Assert.Equal(1L, server.Database.Count("SELECT version FROM master_key"));
            Assert.Equal(2, (await server.PostAsync("/v1/admin/master-key/rotate", null, admin)).Json.GetProperty("masterKeyVersion").GetInt32());
            Assert.Equal(2L, server.Database.Count("SELECT version FROM master_key"));
            await AssertSameKeyAsync(server, licence, device, expected);
        }

        // Back to a file (a new master.keys; the retired one is not reused).
        MasterKeyMigrationResult toFile = MasterKeyMigration.Migrate(new ServerOptions { DataDirectory = data, MasterKey = hsm }, new MasterKeyOptions());
        Assert.Equal(2, toFile.Rewrapped);
        Assert.Null(toFile.RetiredMasterKeysFile);
        Assert.NotEqual(File.ReadAllText(toHsm.RetiredMasterKeysFile!), File.ReadAllText(Path.Combine(data, "master.keys")));
        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data))
        {
            // The move recorded the new file's v1 (the token's v2 is no version of master.keys).
            Assert.Equal(1L, server.Database.Count("SELECT version FROM master_key"));
            await AssertSameKeyAsync(server, licence, device, expected);
        }

        // A target file that exists already, or a move from a provider to itself, is refused and changes nothing.
        var exists = Assert.Throws<ServerConfigurationException>(() => MasterKeyMigration.Migrate(new ServerOptions { DataDirectory = data, MasterKey = hsm }, new MasterKeyOptions()));
        Assert.Contains("already exists", exists.Message, StringComparison.Ordinal);
        var same = Assert.Throws<ServerConfigurationException>(() => MasterKeyMigration.Migrate(new ServerOptions { DataDirectory = data }, new MasterKeyOptions()));
        Assert.Contains("rotate instead", same.Message, StringComparison.Ordinal);
    }

    private static async Task AssertSameKeyAsync(TestServer server, Licence licence, HpkeKeyPair device, byte[] expected)
    {
        using ModelKey key = (await server.ReleaseAndOpenAsync(await server.LicenceTokenAsync(licence), licence, "m", "1", device)).Key;
        Assert.Equal(expected, TestServer.KeyBytes(key));
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/ready")).Status);
    }
}
