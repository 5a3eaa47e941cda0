using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Hpke;
using ModelSeal.Server.Domain;

namespace ModelSeal.Server.Tests;

/// <summary>
/// The admin operations of issue 16 against the real server (docs/protocol.md section 3): removing a device, editing a
/// licence, deleting a model, audit queries and the usage summary; each change appears in the audit log.
/// </summary>
public sealed class AdminSurfaceTests
{
    private static readonly string[] OnlyN = ["n"];
    private static readonly string[] WildcardAndM = ["*", "m"];
    private static readonly DateTimeOffset Start = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Removing_a_device_frees_its_slot_for_another_device_and_is_audited()
    {
        await using TestServer server = await TestServer.StartAsync();
        (string admin, Licence licence) = await LicensedModelAsync(server, maxDevices: 1);
        string token = await server.LicenceTokenAsync(licence);
        using HpkeKeyPair first = HpkeKeyPair.Generate();
        using HpkeKeyPair second = HpkeKeyPair.Generate();
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", first)).Key.Dispose();
        (await server.ReleaseAsync(token, "m", "latest", second)).AssertProblem(HttpStatusCode.Forbidden, "device-limit");

        Api removed = await server.SendAsync(HttpMethod.Delete, $"/v1/admin/licences/{licence.Id}/devices/{first.PublicKey.Thumbprint}", null, admin);

        removed.AssertStatus(HttpStatusCode.OK);
        Assert.Equal(first.PublicKey.Thumbprint, removed.Json.GetProperty("thumbprint").GetString());
        Assert.Empty((await server.GetAsync($"/v1/admin/licences/{licence.Id}/devices", admin)).Json.GetProperty("items").EnumerateArray());
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", second)).Key.Dispose();
        (await server.ReleaseAsync(token, "m", "latest", first)).AssertProblem(HttpStatusCode.Forbidden, "device-limit");
        JsonElement record = Assert.Single(await AuditAsync(server, admin, "event=device.removed"));
        Assert.Equal((licence.Id, first.PublicKey.Thumbprint, "ok"), (record.GetProperty("licenceId").GetString(), record.GetProperty("device").GetString(), record.GetProperty("outcome").GetString()));
        Assert.Equal("admin", record.GetProperty("subject").GetString());

        (await server.SendAsync(HttpMethod.Delete, $"/v1/admin/licences/{licence.Id}/devices/{first.PublicKey.Thumbprint}", null, admin)).AssertProblem(HttpStatusCode.NotFound, "device-not-found");
        (await server.SendAsync(HttpMethod.Delete, $"/v1/admin/licences/lic_none/devices/{first.PublicKey.Thumbprint}", null, admin)).AssertProblem(HttpStatusCode.NotFound, "licence-not-found");
        (await server.SendAsync(HttpMethod.Delete, $"/v1/admin/licences/{licence.Id}/devices/{second.PublicKey.Thumbprint}", null, token)).AssertProblem(HttpStatusCode.Forbidden, "forbidden");
        Assert.Single(await AuditAsync(server, admin, "event=device.removed"));
    }

    [Fact]
    public async Task Lowering_max_devices_keeps_the_registered_devices_and_refuses_new_ones()
    {
        await using TestServer server = await TestServer.StartAsync();
        (string admin, Licence licence) = await LicensedModelAsync(server, maxDevices: 3);
        string token = await server.LicenceTokenAsync(licence);
        using HpkeKeyPair a = HpkeKeyPair.Generate();
        using HpkeKeyPair b = HpkeKeyPair.Generate();
        using HpkeKeyPair c = HpkeKeyPair.Generate();
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", a)).Key.Dispose();
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", b)).Key.Dispose();

        Api edited = await Patch(server, licence.Id, new { maxDevices = 1 }, admin);

        edited.AssertStatus(HttpStatusCode.OK);
        Assert.Equal(1, edited.Json.GetProperty("maxDevices").GetInt32());
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", a)).Key.Dispose();
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", b)).Key.Dispose();
        (await server.ReleaseAsync(token, "m", "latest", c)).AssertProblem(HttpStatusCode.Forbidden, "device-limit");

        // Removing both registered devices frees one slot (the limit is 1 now), not two.
        foreach (HpkeKeyPair device in new[] { a, b })
        {
            (await server.SendAsync(HttpMethod.Delete, $"/v1/admin/licences/{licence.Id}/devices/{device.PublicKey.Thumbprint}", null, admin)).AssertStatus(HttpStatusCode.OK);
        }

        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", c)).Key.Dispose();
        (await server.ReleaseAsync(token, "m", "latest", a)).AssertProblem(HttpStatusCode.Forbidden, "device-limit");

        JsonElement record = Assert.Single(await AuditAsync(server, admin, "event=licence.changed"));
        Assert.Equal(licence.Id, record.GetProperty("licenceId").GetString());
        JsonElement attributes = record.GetProperty("attributes");
        Assert.Equal(("1", "3"), (attributes.GetProperty("maxDevices").GetString(), attributes.GetProperty("maxDevices.was").GetString()));
        Assert.False(attributes.TryGetProperty("models", out _));

        // The same value again changes nothing and records nothing.
        (await Patch(server, licence.Id, new { maxDevices = 1 }, admin)).AssertStatus(HttpStatusCode.OK);
        Assert.Single(await AuditAsync(server, admin, "event=licence.changed"));
    }

    [Fact]
    public async Task Editing_a_licence_changes_its_models_and_end_and_refuses_invalid_changes()
    {
        await using TestServer server = await TestServer.StartAsync();
        (string admin, Licence licence) = await LicensedModelAsync(server, maxDevices: 2);
        await server.CreateModelAsync(admin, "n");
        (await server.CreateVersionAsync(admin, "n")).Key.Dispose();
        string token = await server.LicenceTokenAsync(licence);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (await server.ReleaseAsync(token, "n", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");

        Api models = await Patch(server, licence.Id, new { models = OnlyN }, admin);

        models.AssertStatus(HttpStatusCode.OK);
        Assert.Equal(["n"], models.Json.GetProperty("models").EnumerateArray().Select(m => m.GetString()));
        (await server.ReleaseAndOpenAsync(token, licence, "n", "latest", device)).Key.Dispose();
        (await server.ReleaseAsync(token, "m", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");

        string past = Rfc(server.Now.AddDays(-1));
        Api ended = await Patch(server, licence.Id, new { expiresAt = past }, admin);
        ended.AssertStatus(HttpStatusCode.OK);
        Assert.Equal(past, ended.Json.GetProperty("expiresAt").GetString());
        (await server.ReleaseAsync(token, "n", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "licence-expired");

        // "" removes the expiry: the licence is valid until revoked, and the device gets its key again.
        Api unending = await Patch(server, licence.Id, new { expiresAt = "" }, admin);
        unending.AssertStatus(HttpStatusCode.OK);
        Assert.Equal(JsonValueKind.Null, unending.Json.GetProperty("expiresAt").ValueKind);
        (await server.ReleaseAndOpenAsync(token, licence, "n", "latest", device)).Key.Dispose();

        List<JsonElement> changes = await AuditAsync(server, admin, $"event=licence.changed&licenceId={licence.Id}");
        Assert.Equal(3, changes.Count);
        Assert.Equal(("n", "m"), (changes[0].GetProperty("attributes").GetProperty("models").GetString(), changes[0].GetProperty("attributes").GetProperty("models.was").GetString()));
        Assert.Equal((past, string.Empty), (changes[1].GetProperty("attributes").GetProperty("expiresAt").GetString(), changes[1].GetProperty("attributes").GetProperty("expiresAt.was").GetString()));
        Assert.Equal((string.Empty, past), (changes[2].GetProperty("attributes").GetProperty("expiresAt").GetString(), changes[2].GetProperty("attributes").GetProperty("expiresAt.was").GetString()));

        Api nothing = await Patch(server, licence.Id, new { }, admin);
        nothing.AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        Api invalid = await Patch(server, licence.Id, new { maxDevices = 0, models = WildcardAndM, expiresAt = "tomorrow" }, admin);
        invalid.AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        JsonElement errors = invalid.Json.GetProperty("errors");
        Assert.True(errors.TryGetProperty("maxDevices", out _) && errors.TryGetProperty("models", out _) && errors.TryGetProperty("expiresAt", out _), invalid.Text);
        (await Patch(server, "lic_none", new { maxDevices = 2 }, admin)).AssertProblem(HttpStatusCode.NotFound, "licence-not-found");
        Assert.Equal(3, (await AuditAsync(server, admin, "event=licence.changed")).Count);
    }

    [Fact]
    public async Task A_licence_cannot_be_edited_to_end_before_it_starts()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        Licence licence = await server.CreateLicenceAsync(admin, "later", ["m"], notBefore: server.Now.AddDays(10));

        Api early = await Patch(server, licence.Id, new { expiresAt = Rfc(server.Now.AddDays(5)) }, admin);

        early.AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        Assert.Contains("notBefore", early.Json.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Empty(await AuditAsync(server, admin, $"event=licence.changed&licenceId={licence.Id}"));
        (await Patch(server, licence.Id, new { expiresAt = Rfc(server.Now.AddDays(11)) }, admin)).AssertStatus(HttpStatusCode.OK);
    }

    [Fact]
    public async Task A_model_is_deleted_only_when_every_version_is_destroyed()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        (await server.PostAsync("/v1/admin/models/m/versions/1/destroy", null, admin)).AssertStatus(HttpStatusCode.OK);
        (await server.PostAsync("/v1/admin/models/m/versions/2/disable", null, admin)).AssertStatus(HttpStatusCode.OK);

        Api refused = await server.SendAsync(HttpMethod.Delete, "/v1/admin/models/m", null, admin);

        refused.AssertProblem(HttpStatusCode.Conflict, "versions-not-destroyed");
        Assert.Contains("2", refused.Json.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Empty(await AuditAsync(server, admin, "event=model.deleted"));

        (await server.PostAsync("/v1/admin/models/m/versions/2/destroy", null, admin)).AssertStatus(HttpStatusCode.OK);
        Api deleted = await server.SendAsync(HttpMethod.Delete, "/v1/admin/models/m", null, admin);
        deleted.AssertStatus(HttpStatusCode.OK);
        Assert.Equal(("m", 2), (deleted.Json.GetProperty("modelId").GetString(), deleted.Json.GetProperty("versions").GetInt32()));
        Assert.Empty((await server.GetAsync("/v1/admin/models", admin)).Json.GetProperty("items").EnumerateArray());
        Assert.Equal(0, server.Database.Count("SELECT COUNT(*) FROM model_versions WHERE model_id = 'm'"));
        JsonElement record = Assert.Single(await AuditAsync(server, admin, "event=model.deleted"));
        Assert.Equal(("m", "2"), (record.GetProperty("modelId").GetString(), record.GetProperty("attributes").GetProperty("versions").GetString()));
        Assert.Equal(record.GetProperty("at").GetString(), deleted.Json.GetProperty("deletedAt").GetString());

        (await server.SendAsync(HttpMethod.Delete, "/v1/admin/models/m", null, admin)).AssertProblem(HttpStatusCode.NotFound, "model-not-found");

        // The id is free again, and the audit chain still verifies.
        await server.CreateModelAsync(admin, "m");
        (Release again, ModelKey key) = await server.CreateVersionAsync(admin, "m");
        key.Dispose();
        Assert.Equal("1", again.Version);
        JsonElement chain = await AuditChainTests.VerifyAsync(server, admin);
        Assert.True(chain.GetProperty("verified").GetBoolean(), chain.ToString());
    }

    [Fact]
    public async Task Audit_queries_filter_by_licence_model_event_and_time_and_page_through_the_matches()
    {
        var time = new ManualTime(Start);
        await using TestServer server = await TestServer.StartAsync(options =>
        {
            TestServer.WithoutRateLimits(options);
            options.Time = time;
        });
        (string admin, Licence licence) = await LicensedModelAsync(server, maxDevices: 5);
        Licence other = await server.CreateLicenceAsync(admin, "other", ["m"]);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (await server.ReleaseAndOpenAsync(await server.LicenceTokenAsync(licence), licence, "m", "latest", device)).Key.Dispose();
        (await server.ReleaseAndOpenAsync(await server.LicenceTokenAsync(other), other, "m", "latest", device)).Key.Dispose();
        time.Advance(TimeSpan.FromHours(2));
        admin = await server.AdminTokenAsync();
        string token = await server.LicenceTokenAsync(licence);
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", device)).Key.Dispose();
        (await server.ReleaseAsync(token, "x", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");

        Assert.Equal(2, (await AuditAsync(server, admin, $"licenceId={licence.Id}&event=key.released")).Count);
        Assert.Equal(4, (await AuditAsync(server, admin, $"licenceId={licence.Id}")).Count); // created, 2 released, refused
        Assert.All(await AuditAsync(server, admin, "modelId=m"), r => Assert.Equal("m", r.GetProperty("modelId").GetString()));
        Assert.Equal(3, (await AuditAsync(server, admin, "modelId=m&event=key.released")).Count);
        Assert.Single(await AuditAsync(server, admin, "event=key.refused&modelId=x"));
        Assert.Equal(2, (await AuditAsync(server, admin, "subject=customer&event=key.released")).Count);
        Assert.Single(await AuditAsync(server, admin, "subject=other&event=key.released"));
        string since = Rfc(Start.AddHours(1));
        List<JsonElement> later = await AuditAsync(server, admin, $"since={since}");
        Assert.Equal(["key.released", "key.refused"], later.Select(r => r.GetProperty("event").GetString()));
        List<JsonElement> earlier = await AuditAsync(server, admin, $"until={since}&event=key.released");
        Assert.Equal(2, earlier.Count);

        // Paging walks the filtered records only.
        Api page = await server.GetAsync("/v1/admin/audit?event=key.released&limit=2", admin);
        long next = page.Json.GetProperty("next").GetInt64();
        Api rest = await server.GetAsync($"/v1/admin/audit?event=key.released&limit=2&after={next}", admin);
        Assert.Equal(3, page.Json.GetProperty("items").GetArrayLength() + rest.Json.GetProperty("items").GetArrayLength());
        Assert.Equal(JsonValueKind.Null, rest.Json.GetProperty("next").ValueKind);

        Api invalid = await server.GetAsync($"/v1/admin/audit?since=yesterday&until={since}&event=Key%20Released", admin);
        invalid.AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        Assert.True(invalid.Json.GetProperty("errors").TryGetProperty("since", out _) && invalid.Json.GetProperty("errors").TryGetProperty("event", out _), invalid.Text);
        (await server.GetAsync($"/v1/admin/audit?since={since}&until={Rfc(Start)}", admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
    }

    [Fact]
    public async Task Usage_counts_releases_and_refusals_per_model_per_day_with_coalesced_counts()
    {
        var time = new ManualTime(Start);
        await using TestServer server = await TestServer.StartAsync(options =>
        {
            TestServer.WithoutRateLimits(options);
            options.Time = time;
            options.Audit.RefusalWindow = TimeSpan.FromSeconds(10);
        });
        AuditTrail audit = server.App.Services.GetRequiredService<AuditTrail>();
        (string admin, Licence licence) = await LicensedModelAsync(server, maxDevices: 1);
        string token = await server.LicenceTokenAsync(licence);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        using HpkeKeyPair stranger = HpkeKeyPair.Generate();
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", device)).Key.Dispose();
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", device)).Key.Dispose();
        for (int i = 0; i < 3; i++)
        {
            (await server.ReleaseAsync(token, "m", "latest", stranger)).AssertProblem(HttpStatusCode.Forbidden, "device-limit");
        }

        (await server.ReleaseAsync(token, "other", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");
        await AuditCoalescingTests.PassAsync(audit, time, TimeSpan.FromSeconds(11));
        Assert.Equal(1, server.Database.Count("SELECT COUNT(*) FROM audit WHERE event = 'key.refused' AND outcome = 'device-limit'"));

        time.Advance(TimeSpan.FromDays(1));
        token = await server.LicenceTokenAsync(licence);
        admin = await server.AdminTokenAsync();
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", device)).Key.Dispose();

        Api usage = await server.GetAsync("/v1/admin/usage", admin);

        usage.AssertStatus(HttpStatusCode.OK);
        var rows = usage.Json.GetProperty("items").EnumerateArray()
            .Select(r => (r.GetProperty("modelId").GetString(), r.GetProperty("day").GetString(), r.GetProperty("releases").GetInt64(), r.GetProperty("refusals").GetInt64(),
                string.Join(",", r.GetProperty("refusalsByReason").EnumerateObject().Select(p => $"{p.Name}={p.Value.GetInt64()}"))))
            .ToList();
        Assert.Equal(
            [("m", "2026-11-23", 2L, 3L, "device-limit=3"), ("m", "2026-11-24", 1L, 0L, string.Empty), ("other", "2026-11-23", 0L, 1L, "model-not-licensed=1")],
            rows);

        Api dayTwo = await server.GetAsync("/v1/admin/usage?since=2026-11-24T00:00:00Z&until=2026-11-25T00:00:00Z", admin);
        Assert.Equal("2026-11-24T00:00:00Z", dayTwo.Json.GetProperty("since").GetString());
        JsonElement only = Assert.Single(dayTwo.Json.GetProperty("items").EnumerateArray());
        Assert.Equal(("m", 1), (only.GetProperty("modelId").GetString(), only.GetProperty("releases").GetInt32()));
        (await server.GetAsync("/v1/admin/usage?since=2026-11-24", admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
    }

    /// <summary>Model m with version 1 and a licence for it; returns an admin token and the licence.</summary>
    private static async Task<(string Admin, Licence Licence)> LicensedModelAsync(TestServer server, int maxDevices)
    {
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        return (admin, await server.CreateLicenceAsync(admin, "customer", ["m"], maxDevices));
    }

    private static Task<Api> Patch(TestServer server, string licenceId, object body, string token) =>
        server.SendAsync(HttpMethod.Patch, $"/v1/admin/licences/{licenceId}", ServerClient.JsonContent(body), token);

    private static async Task<List<JsonElement>> AuditAsync(TestServer server, string admin, string query)
    {
        Api answer = await server.GetAsync("/v1/admin/audit?limit=500&" + query, admin);
        answer.AssertStatus(HttpStatusCode.OK);
        return [.. answer.Json.GetProperty("items").EnumerateArray()];
    }

    private static string Rfc(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);
}
