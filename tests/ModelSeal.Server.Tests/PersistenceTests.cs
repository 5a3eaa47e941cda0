using System.Net;
using System.Text.Json;
using ModelSeal.Hpke;

namespace ModelSeal.Server.Tests;

/// <summary>Master key rotation and restarts on the same data directory.</summary>
public sealed class PersistenceTests
{
    [Fact]
    public async Task Master_key_rotation_keeps_every_model_openable_across_restarts()
    {
        using var directory = new TempDirectory();
        string data = directory.Sub("data");
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        byte[] keyA, keyB;
        Licence licence;
        string oldToken;

        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data))
        {
            string admin = await server.AdminTokenAsync();
            await server.CreateModelAsync(admin, "a");
            await server.CreateModelAsync(admin, "b");
            (Release va, ModelKey ka) = await server.CreateVersionAsync(admin, "a");
            (_, ModelKey kb) = await server.CreateVersionAsync(admin, "b");
            (_, ModelKey doomed) = await server.CreateVersionAsync(admin, "b", version: "doomed");
            keyA = TestServer.KeyBytes(ka);
            keyB = TestServer.KeyBytes(kb);
            ka.Dispose();
            kb.Dispose();
            doomed.Dispose();
            licence = await server.CreateLicenceAsync(admin, "s", ["*"]);
            oldToken = await server.LicenceTokenAsync(licence);
            await AssertReleasesAsync(server, oldToken, licence, device, ("a", "1", keyA), ("b", "1", keyB));

            // Rotate: every key that still exists is rewrapped; the destroyed one is not.
            Assert.Equal(HttpStatusCode.OK, (await server.PostAsync("/v1/admin/models/b/versions/doomed/destroy", null, admin)).Status);
            Api rotated = await server.PostAsync("/v1/admin/master-key/rotate", null, admin);
            Assert.Equal(HttpStatusCode.OK, rotated.Status);
            Assert.Equal(2, rotated.Json.GetProperty("masterKeyVersion").GetInt32());
            Assert.Equal(2, rotated.Json.GetProperty("rewrapped").GetInt32());
            await AssertReleasesAsync(server, oldToken, licence, device, ("a", "1", keyA), ("b", "1", keyB));

            // A version created after the rotation is wrapped with v2, and a second rotation rewraps all three.
            (Release vc, ModelKey kc) = await server.CreateVersionAsync(admin, "a");
            Assert.Equal("2", vc.Version);
            byte[] keyC = TestServer.KeyBytes(kc);
            kc.Dispose();
            rotated = await server.PostAsync("/v1/admin/master-key/rotate", null, admin);
            Assert.Equal(3, rotated.Json.GetProperty("masterKeyVersion").GetInt32());
            Assert.Equal(3, rotated.Json.GetProperty("rewrapped").GetInt32());
            await AssertReleasesAsync(server, oldToken, licence, device, ("a", "1", keyA), ("b", "1", keyB), ("a", "2", keyC));
            Assert.Equal(va.KeyId, (await server.ReleaseAndOpenAsync(oldToken, licence, "a", "1", device)).Answer.KeyId);
        }

        // master.keys: three versions, owner-only (with the key file; a PKCS#11 token holds them otherwise).
        if (!TestBackends.Pkcs11)
        {
            string[] lines = File.ReadAllLines(Path.Combine(data, "master.keys"));
            Assert.Equal(["v1", "v2", "v3"], lines.Select(l => l.Split(' ')[0]));
            Assert.All(lines, l => Assert.Matches("^v[0-9]+ [0-9a-f]{64}$", l));
        }

        if (!OperatingSystem.IsWindows())
        {
            // With PKCS#11 the master keys and the signing keys are in the token, and the data directory holds none.
            string[] files = [.. TestBackends.Pkcs11 ? Array.Empty<string>() : ["master.keys", "token-signing.key", "answer-signing.key"], .. TestBackends.Postgres ? Array.Empty<string>() : ["modelseal.db"]];
            foreach (string file in files)
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(data, file)));
            }

            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(data));
        }

        if (TestBackends.Pkcs11)
        {
            Assert.Empty(Directory.GetFiles(data, "*.key*"));
        }

        // Restart: the same keys, the old token still valid (same token key), the same admin credential.
        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data))
        {
            await AssertReleasesAsync(server, oldToken, licence, device, ("a", "1", keyA), ("b", "1", keyB));
            (await server.ReleaseAsync(oldToken, "b", "doomed", device)).AssertProblem(HttpStatusCode.Gone, "version-destroyed");
            string admin = await server.AdminTokenAsync();
            Api rotated = await server.PostAsync("/v1/admin/master-key/rotate", null, admin);
            Assert.Equal(4, rotated.Json.GetProperty("masterKeyVersion").GetInt32());
            await AssertReleasesAsync(server, await server.LicenceTokenAsync(licence), licence, device, ("a", "1", keyA), ("b", "1", keyB));
        }
    }

    [Fact]
    public async Task A_restart_keeps_models_licences_devices_and_the_audit_log()
    {
        using var directory = new TempDirectory();
        string data = directory.Sub("data");
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        Licence licence;
        byte[] key;
        string modelsBefore, licencesBefore, devicesBefore, auditBefore, credentialBefore;

        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data))
        {
            credentialBefore = server.AdminCredential;
            string admin = await server.AdminTokenAsync();
            await server.CreateModelAsync(admin, "classifier");
            (_, ModelKey created) = await server.CreateVersionAsync(admin, "classifier");
            created.Dispose();
            (await server.CreateVersionAsync(admin, "classifier")).Key.Dispose();
            await server.PostAsync("/v1/admin/models/classifier/versions/2/disable", null, admin);
            licence = await server.CreateLicenceAsync(admin, "customer", ["classifier"], maxDevices: 1);
            (_, ModelKey released) = await server.ReleaseAndOpenAsync(await server.LicenceTokenAsync(licence), licence, "classifier", "latest", device);
            key = TestServer.KeyBytes(released);
            released.Dispose();
            modelsBefore = (await server.GetAsync("/v1/admin/models", admin)).Text;
            licencesBefore = (await server.GetAsync("/v1/admin/licences", admin)).Text;
            devicesBefore = (await server.GetAsync($"/v1/admin/licences/{licence.Id}/devices", admin)).Text;
            auditBefore = (await server.GetAsync("/v1/admin/audit?limit=500", admin)).Text;
        }

        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data))
        {
            Assert.Equal(credentialBefore, server.AdminCredential);
            string admin = await server.AdminTokenAsync();
            Assert.Equal(modelsBefore, (await server.GetAsync("/v1/admin/models", admin)).Text);
            Assert.Equal(licencesBefore, (await server.GetAsync("/v1/admin/licences", admin)).Text);
            Assert.Equal(devicesBefore, (await server.GetAsync($"/v1/admin/licences/{licence.Id}/devices", admin)).Text);
            Assert.Equal(auditBefore, (await server.GetAsync("/v1/admin/audit?limit=500", admin)).Text);
            Assert.True(JsonDocument.Parse(auditBefore).RootElement.GetProperty("items").GetArrayLength() >= 6);

            // The device is still registered (the limit of 1 holds), and its key is the same.
            string token = await server.LicenceTokenAsync(licence);
            (_, ModelKey again) = await server.ReleaseAndOpenAsync(token, licence, "classifier", "latest", device);
            using (again)
            {
                Assert.Equal(key, TestServer.KeyBytes(again));
            }

            using HpkeKeyPair other = HpkeKeyPair.Generate();
            (await server.ReleaseAsync(token, "classifier", "latest", other)).AssertProblem(HttpStatusCode.Forbidden, "device-limit");
            (await server.ReleaseAsync(token, "classifier", "2", device)).AssertProblem(HttpStatusCode.Forbidden, "version-disabled");
        }
    }

    [Fact]
    [Trait("Store", "sqlite")]
    public async Task Destroy_erases_the_wrapped_key_from_the_database_files()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        string database = Path.Combine(server.DataDirectory, "modelseal.db");
        byte[] wrapped;
        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={database};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT wrapped_key FROM model_versions WHERE version = '1'";
            wrapped = (byte[])command.ExecuteScalar()!;
        }

        Assert.Equal(60, wrapped.Length);
        Assert.True(ContainsInDatabaseFiles(database, wrapped), "The wrapped key should be found before it is destroyed.");
        Assert.Equal(HttpStatusCode.OK, (await server.PostAsync("/v1/admin/models/m/versions/1/destroy", null, admin)).Status);
        Assert.False(ContainsInDatabaseFiles(database, wrapped), "The destroyed wrapped key is still in the database files.");
    }

    private static bool ContainsInDatabaseFiles(string database, byte[] needle)
    {
        foreach (string path in new[] { database, database + "-wal" })
        {
            if (File.Exists(path))
            {
                using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                byte[] content = new byte[stream.Length];
                stream.ReadExactly(content);
                if (content.AsSpan().IndexOf(needle) >= 0)
                {
                    return true;
                }
            }
        }

        return false;
    }

    private static async Task AssertReleasesAsync(TestServer server, string token, Licence licence, HpkeKeyPair device, params (string Model, string Version, byte[] Key)[] expected)
    {
        foreach ((string model, string version, byte[] bytes) in expected)
        {
            (_, ModelKey key) = await server.ReleaseAndOpenAsync(token, licence, model, version, device);
            using (key)
            {
                Assert.Equal(bytes, TestServer.KeyBytes(key));
            }
        }
    }
}
