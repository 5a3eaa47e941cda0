using System.Collections.Concurrent;
using System.Net;
using System.Data.Common;
using ModelSeal.Hpke;

namespace ModelSeal.Server.Tests;

/// <summary>Every release is audited before the key leaves; without an audit log, no key leaves.</summary>
public sealed class AuditTests
{
    private const int Releases = 1000;

    [Fact]
    public async Task A_burst_of_releases_has_one_audit_record_each_and_a_broken_audit_log_releases_nothing()
    {
        await using TestServer server = await TestServer.StartAsync(TestServer.WithoutRateLimits);
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (Release version, ModelKey created) = await server.CreateVersionAsync(admin, "m");
        byte[] expectedKey = TestServer.KeyBytes(created);
        created.Dispose();
        Licence licence = await server.CreateLicenceAsync(admin, "burst", ["m"], maxDevices: 8);
        string token = await server.LicenceTokenAsync(licence);
        HpkeKeyPair[] devices = Enumerable.Range(0, 6).Select(_ => HpkeKeyPair.Generate()).ToArray();
        long before = server.Database.Count("SELECT COUNT(*) FROM audit WHERE event = 'key.released'");
        long maxIdBefore = server.Database.Count("SELECT COALESCE(MAX(id), 0) FROM audit");

        var answers = new ConcurrentBag<(int Device, Api Answer)>();
        await Parallel.ForEachAsync(
            Enumerable.Range(0, Releases),
            new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = TestContext.Current.CancellationToken },
            async (i, _) => answers.Add((i % devices.Length, await server.ReleaseAsync(token, "m", "latest", devices[i % devices.Length]))));

        Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.Answer.Status));
        foreach ((int device, Api answer) in answers)
        {
            using ModelKey key = Release.From(answer).Open(devices[device], licence.Subject);
            Assert.Equal(expectedKey, TestServer.KeyBytes(key));
        }

        long after = server.Database.Count("SELECT COUNT(*) FROM audit WHERE event = 'key.released'");
        Assert.Equal(answers.Count(a => a.Answer.Status == HttpStatusCode.OK), after - before);
        Assert.Equal(Releases, server.Database.Count($"SELECT COUNT(DISTINCT id) FROM audit WHERE event = 'key.released' AND id > {maxIdBefore}"));
        Assert.Equal(Releases, server.Database.Count($"SELECT COUNT(*) FROM audit WHERE event = 'key.released' AND id > {maxIdBefore} AND licence_id = '{licence.Id}' AND key_id = '{version.KeyId}'"));
        foreach (HpkeKeyPair device in devices)
        {
            Assert.Equal(Releases / devices.Length + (Array.IndexOf(devices, device) < Releases % devices.Length ? 1 : 0), server.Database.Count($"SELECT COUNT(*) FROM audit WHERE event = 'key.released' AND id > {maxIdBefore} AND device = '{device.PublicKey.Thumbprint}'"));
        }

        Assert.Equal(devices.Length, server.Database.Count($"SELECT COUNT(*) FROM devices WHERE licence_id = '{licence.Id}'"));

        // The writer chained the concurrent releases one after another: the whole log verifies.
        System.Text.Json.JsonElement chain = await AuditChainTests.VerifyAsync(server, admin);
        Assert.True(chain.GetProperty("verified").GetBoolean(), chain.ToString());
        Assert.Equal(server.Database.Count("SELECT COUNT(*) FROM audit"), chain.GetProperty("records").GetInt64());
        Assert.Equal(server.Database.Count("SELECT MAX(id) FROM audit"), chain.GetProperty("lastId").GetInt64());

        // The audit log becomes unwritable: releases fail closed, for known and new devices alike.
        server.Database.Execute(server.Database.IsPostgres
            ? "CREATE FUNCTION block_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit unavailable'; END $$; CREATE TRIGGER block_audit BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION block_audit();"
            : "CREATE TRIGGER block_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit unavailable'); END;");
        using HpkeKeyPair newDevice = HpkeKeyPair.Generate();
        foreach (HpkeKeyPair device in new[] { devices[0], newDevice })
        {
            Api refused = await server.ReleaseAsync(token, "m", "latest", device);
            refused.AssertProblem(HttpStatusCode.ServiceUnavailable, "audit-unavailable");
            Assert.DoesNotContain("sealedKey", refused.Text, StringComparison.Ordinal);
            Assert.DoesNotContain("\"enc\"", refused.Text, StringComparison.Ordinal);
        }

        Assert.Equal(after, server.Database.Count("SELECT COUNT(*) FROM audit WHERE event = 'key.released'"));
        Assert.Equal(devices.Length, server.Database.Count($"SELECT COUNT(*) FROM devices WHERE licence_id = '{licence.Id}'"));

        // Refusals still answer (their audit is best effort), and admin changes fail without being half done.
        (await server.ReleaseAsync(token, "other", "latest", devices[0])).AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");
        Api model = await server.PostAsync("/v1/admin/models", new { modelId = "unaudited" }, admin);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, model.Status);
        Assert.Equal("application/problem+json", model.ContentType);
        Assert.Equal(0, server.Database.Count("SELECT COUNT(*) FROM models WHERE model_id = 'unaudited'"));

        // Once the audit log is back, so are releases.
        server.Database.Execute(server.Database.IsPostgres ? "DROP TRIGGER block_audit ON audit;" : "DROP TRIGGER block_audit;");
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", newDevice)).Key.Dispose();
        foreach (HpkeKeyPair device in devices)
        {
            device.Dispose();
        }
    }

    [Fact]
    public async Task The_audit_log_is_append_only_and_pages()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        for (int i = 0; i < 5; i++)
        {
            await server.CreateModelAsync(admin, $"m{i}");
        }

        Assert.ThrowsAny<DbException>(() => server.Database.Execute("UPDATE audit SET outcome = 'forged'"));
        Assert.ThrowsAny<DbException>(() => server.Database.Execute("DELETE FROM audit"));
        Assert.Equal(5, server.Database.Count("SELECT COUNT(*) FROM audit WHERE event = 'model.created' AND outcome = 'ok'"));

        Api first = await server.GetAsync("/v1/admin/audit?limit=2", admin);
        Assert.Equal(2, first.Json.GetProperty("items").GetArrayLength());
        long next = first.Json.GetProperty("next").GetInt64();
        Api second = await server.GetAsync($"/v1/admin/audit?after={next}&limit=500", admin);
        Assert.Equal(3, second.Json.GetProperty("items").GetArrayLength());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, second.Json.GetProperty("next").ValueKind);
        Assert.Equal("model.created", second.Json.GetProperty("items")[0].GetProperty("event").GetString());
        Assert.Equal("admin", second.Json.GetProperty("items")[0].GetProperty("subject").GetString());
        (await server.GetAsync("/v1/admin/audit?limit=0", admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        (await server.GetAsync("/v1/admin/audit?limit=501", admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        (await server.GetAsync("/v1/admin/audit?after=x", admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
    }
}
