using System.Net;
using System.Text.Json;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;

namespace ModelSeal.Server.Tests;

/// <summary>Moving a key server from its SQLite database to PostgreSQL (docs/deploy.md "Moving to PostgreSQL").</summary>
[Trait("Backends", "own")]
public sealed class DatabaseMigrationTests
{
    [Fact]
    public async Task Everything_moves_to_postgres_and_the_service_continues_where_it_was()
    {
        using var directory = new TempDirectory();
        string data = directory.Sub("data");
        var postgres = new DatabaseOptions { Provider = DatabaseOptions.Postgres, ConnectionString = PostgresSchema.ConnectionString(directory.Path, create: true) };
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        using HpkeKeyPair other = HpkeKeyPair.Generate();
        using var idp = new ExternalIssuer("https://idp.example", directory.Sub("idp.json"));
        void Entitled(ServerOptions o)
        {
            o.TrustedIssuers = [new() { Issuer = idp.Issuer, JwksFile = idp.JwksFile }];
            o.Entitlements.Rules = [new() { Name = "one-device", Issuer = idp.Issuer, Models = ["m"], MaxDevices = 1 }];
        }

        byte[] expected;
        Licence licence, revoked;
        JsonElement head;
        string models, users;
        await using (TestServer server = await TestServer.StartAsync(Entitled, data))
        {
            string admin = await server.AdminTokenAsync();
            await server.CreateModelAsync(admin, "m");
            (_, ModelKey created) = await server.CreateVersionAsync(admin, "m");
            expected = TestServer.KeyBytes(created);
            created.Dispose();
            (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
            (await server.CreateVersionAsync(admin, "m", version: "gone")).Key.Dispose();
            (await server.PostAsync("/v1/admin/models/m/versions/gone/destroy", null, admin)).AssertStatus(HttpStatusCode.OK);
            licence = await server.CreateLicenceAsync(admin, "s", ["m"], maxDevices: 1);
            revoked = await server.CreateLicenceAsync(admin, "r", ["m"]);
            (await server.ReleaseAndOpenAsync(await server.LicenceTokenAsync(licence), licence, "m", "1", device)).Key.Dispose();
            string revokedToken = await server.LicenceTokenAsync(revoked);
            (await server.PostAsync($"/v1/admin/licences/{revoked.Id}/revoke", null, admin)).AssertStatus(HttpStatusCode.OK);
            (await server.ReleaseAsync(revokedToken, "m", "1", device)).AssertProblem(HttpStatusCode.Forbidden, "licence-revoked");
            Assert.Equal(2, (await server.PostAsync("/v1/admin/master-key/rotate", null, admin)).Json.GetProperty("masterKeyVersion").GetInt32());

            // Users of the entitlement rule (schema 7): one with its one device, one blocked.
            (await server.ReleaseAsync(idp.Token("user", "keys", server.Now), "m", "1", device)).AssertStatus(HttpStatusCode.OK);
            (await server.ReleaseAsync(idp.Token("blocked", "keys", server.Now), "m", "1", device)).AssertStatus(HttpStatusCode.OK);
            long blockedId = (await server.GetAsync("/v1/admin/users", admin)).Json.GetProperty("items").EnumerateArray().Single(u => u.GetProperty("subject").GetString() == "blocked").GetProperty("userId").GetInt64();
            (await server.PostAsync($"/v1/admin/users/{blockedId}/block", null, admin)).AssertStatus(HttpStatusCode.OK);
            // An accepted attestation (schema 8) moves; an issued challenge does not.
            server.Database.Execute(
                "INSERT INTO device_attestations (thumbprint, format, policy, device_key, certificates, challenge, counter, verified_at, rejected_at, rejected_reason) " +
                "VALUES ('t1', 'android-key', 'store-apps', X'04', '[\"AQI=\"]', X'0102', 0, 1700000000, 1700000100, 'certificate-revoked')");
            server.Database.Execute("INSERT INTO attestation_challenges (challenge, issuer, subject, expires_at) VALUES ('c1', 'i', 's', 4000000000)");
            head = await AuditChainTests.VerifyAsync(server, admin);
            models = (await server.GetAsync("/v1/admin/models", admin)).Text;
            users = (await server.GetAsync("/v1/admin/users", admin)).Text;
        }

        DatabaseMigrationResult moved = DatabaseMigration.Migrate(new ServerOptions { DataDirectory = data }, postgres);
        Assert.Equal((1, 3, 2, 1, 2, 2), (moved.Models, moved.Versions, moved.Licences, moved.Devices, moved.Users, moved.UserDevices));
        Assert.Equal(head.GetProperty("records").GetInt64(), moved.AuditRecords);
        Assert.Equal(1, moved.DeviceAttestations);
        Assert.False(File.Exists(Path.Combine(data, "modelseal.db")), "The SQLite database must not stay where a server would use it.");
        Assert.True(File.Exists(moved.RetiredDatabaseFile));

        // The recorded master-key version moves with the database: a v3 added to master.keys meanwhile never wraps.
        File.AppendAllText(Path.Combine(data, "master.keys"), $"v3 {Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32))}\n");

        await using (TestServer server = await TestServer.StartAsync(
            o =>
            {
                Entitled(o);
                o.Database = postgres;
            },
            data))
        {
            string admin = await server.AdminTokenAsync();
            Assert.Equal(models, (await server.GetAsync("/v1/admin/models", admin)).Text);
            Assert.Equal(1, server.Database.Count("SELECT COUNT(*) FROM device_attestations WHERE thumbprint = 't1' AND certificates = '[\"AQI=\"]' AND challenge = '\\x0102' AND rejected_at = 1700000100 AND rejected_reason = 'certificate-revoked'"));
            Assert.Equal(0, server.Database.Count("SELECT COUNT(*) FROM attestation_challenges"));
            Assert.Equal(users, (await server.GetAsync("/v1/admin/users", admin)).Text);

            // The chain continues: the old head is still there, followed by the migration record.
            JsonElement chain = await AuditChainTests.VerifyAsync(server, admin, head);
            Assert.True(chain.GetProperty("verified").GetBoolean(), chain.ToString());
            Assert.Equal(head.GetProperty("records").GetInt64() + 1, chain.GetProperty("records").GetInt64());

            // The signed checkpoint of the SQLite server's stop moved with the records, and still verifies.
            JsonElement checkpoint = chain.GetProperty("checkpoint");
            Assert.True(checkpoint.GetProperty("verified").GetBoolean(), chain.ToString());
            Assert.Equal(head.GetProperty("records").GetInt64(), checkpoint.GetProperty("records").GetInt64());
            Assert.Equal(head.GetProperty("lastHash").GetString(), checkpoint.GetProperty("lastHash").GetString());

            // The users' devices and blocks moved too: the registered device still fits, another does not,
            // the blocked user stays blocked, and a new user is numbered after them.
            (await server.ReleaseAsync(idp.Token("user", "keys", server.Now), "m", "1", device)).AssertStatus(HttpStatusCode.OK);
            (await server.ReleaseAsync(idp.Token("user", "keys", server.Now), "m", "1", other)).AssertProblem(HttpStatusCode.Forbidden, "device-limit");
            (await server.ReleaseAsync(idp.Token("blocked", "keys", server.Now), "m", "1", device)).AssertProblem(HttpStatusCode.Forbidden, "user-blocked");
            (await server.ReleaseAsync(idp.Token("new", "keys", server.Now), "m", "1", device)).AssertStatus(HttpStatusCode.OK);
            Assert.Equal(3L, server.Database.Count("SELECT user_id FROM users WHERE subject = 'new'"));

            // Same keys, same device registrations, same revocations, same destroyed version.
            string token = await server.LicenceTokenAsync(licence);
            using (ModelKey key = (await server.ReleaseAndOpenAsync(token, licence, "m", "1", device)).Key)
            {
                Assert.Equal(expected, TestServer.KeyBytes(key));
            }

            (await server.ReleaseAsync(token, "m", "1", other)).AssertProblem(HttpStatusCode.Forbidden, "device-limit");
            (await server.ReleaseAsync(token, "m", "gone", device)).AssertProblem(HttpStatusCode.Gone, "version-destroyed");
            (await server.PostAsync("/v1/token", new { grantType = "licence", licenceId = revoked.Id, credential = revoked.Credential })).AssertProblem(HttpStatusCode.Forbidden, "licence-revoked");

            // New versions continue the sequence, wrapped with the recorded master key.
            Assert.Equal(2L, server.Database.Count("SELECT version FROM master_key"));
            (Release next, ModelKey nextKey) = await server.CreateVersionAsync(admin, "m");
            nextKey.Dispose();
            Assert.Equal("3", next.Version);
            Assert.Equal(2L, server.Database.Count("SELECT master_key_version FROM model_versions WHERE version = '3'"));
        }

        // Nothing left to move; and a database that is not empty is never written into.
        var again = Assert.Throws<ServerConfigurationException>(() => DatabaseMigration.Migrate(new ServerOptions { DataDirectory = data }, postgres));
        Assert.Contains("no database", again.Message, StringComparison.Ordinal);
        File.Copy(moved.RetiredDatabaseFile, Path.Combine(data, "modelseal.db"));
        var full = Assert.Throws<ServerConfigurationException>(() => DatabaseMigration.Migrate(new ServerOptions { DataDirectory = data }, postgres));
        Assert.Contains("already holds", full.Message, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(data, "modelseal.db")), "A refused move leaves the SQLite database in place.");
    }
}
