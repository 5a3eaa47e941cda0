using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Domain;

namespace ModelSeal.Server.Tests;

/// <summary>
/// Entitlement rules and users (docs/protocol.md section 2.5, docs/deploy.md "Entitlement rules"): a trusted issuer's
/// user that no licence covers gets keys under the first rule whose conditions match its token's claims, on as many
/// devices as the rule allows; blocked users are refused; the rule file is reloaded without a restart.
/// </summary>
public sealed class EntitlementTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private static EntitlementRuleOptions Rule(string name, string issuer, string[] models, int maxDevices = 1) =>
        new() { Name = name, Issuer = issuer, Models = models, MaxDevices = maxDevices };

    [Fact]
    public async Task Each_condition_kind_matches_or_not_and_the_first_matching_rule_decides()
    {
        using var idp = new ExternalIssuer("https://idp.example", _directory.Sub("idp.json"));
        using var other = new ExternalIssuer("https://other.example", _directory.Sub("other.json"), kid: "other-1");
        await using TestServer server = await TestServer.StartAsync(o =>
        {
            o.TrustedIssuers = [new() { Issuer = idp.Issuer, JwksFile = idp.JwksFile }, new() { Issuer = other.Issuer, JwksFile = other.JwksFile }];
            EntitlementRuleOptions bySubject = Rule("by-subject", idp.Issuer, ["a-*"]);
            bySubject.Subjects = ["alice", "alfred"];
            EntitlementRuleOptions byScope = Rule("by-scope", idp.Issuer, ["s"]);
            byScope.Scopes = ["keys", "models.read"];
            EntitlementRuleOptions byGroup = Rule("by-group", idp.Issuer, ["g"]);
            byGroup.Groups = ["beta", "staff"];
            byGroup.GroupsClaim = "roles";
            EntitlementRuleOptions byClaim = Rule("by-claim", idp.Issuer, ["*"]);
            byClaim.Claims = new Dictionary<string, string> { ["plan"] = "pro", ["tenant"] = "acme" };
            EntitlementRuleOptions ended = Rule("ended", idp.Issuer, ["*"]);
            ended.NotAfter = "2020-01-01";
            o.Entitlements.Rules = [bySubject, byScope, byGroup, byClaim, ended];
        });
        string admin = await server.AdminTokenAsync();
        foreach (string model in new[] { "a-1", "s", "g", "z" })
        {
            await server.CreateModelAsync(admin, model);
            (await server.CreateVersionAsync(admin, model)).Key.Dispose();
        }

        using HpkeKeyPair device = HpkeKeyPair.Generate();
        DateTimeOffset now = server.Now;
        string Token(string subject, string scope = "keys", Action<JsonObject>? change = null)
        {
            JsonObject claims = idp.Claims(subject, scope, now);
            change?.Invoke(claims);
            return idp.Sign(claims);
        }

        async Task Released(string token, string subject, string model, string rule)
        {
            Api answer = await server.ReleaseAsync(token, model, "latest", device);
            answer.AssertStatus(HttpStatusCode.OK);
            using ModelKey key = Release.From(answer).Open(device, subject);
            JsonElement record = await LastRecordAsync(server, admin);
            Assert.Equal("key.released", record.GetProperty("event").GetString());
            Assert.Equal(subject, record.GetProperty("subject").GetString());
            Assert.Equal(idp.Issuer, record.GetProperty("issuer").GetString());
            Assert.Equal(JsonValueKind.Null, record.GetProperty("licenceId").ValueKind);
            Assert.Equal(rule, record.GetProperty("attributes").GetProperty("rule").GetString());
        }

        async Task Refused(string token, string model, string code, string? rule = null)
        {
            Api answer = await server.ReleaseAsync(token, model, "latest", device);
            answer.AssertProblem(HttpStatusCode.Forbidden, code);
            Assert.True(answer.Json.TryGetProperty("signature", out _), "The refusal is signed.");
            JsonElement record = await LastRecordAsync(server, admin);
            Assert.Equal("key.refused", record.GetProperty("event").GetString());
            Assert.Equal(code, record.GetProperty("outcome").GetString());
            if (rule is null)
            {
                Assert.True(record.GetProperty("attributes").ValueKind == JsonValueKind.Null || !record.GetProperty("attributes").TryGetProperty("rule", out _));
            }
            else
            {
                Assert.Equal(rule, record.GetProperty("attributes").GetProperty("rule").GetString());
            }
        }

        // sub: listed subjects only; the rule decides for them, covering the model (a prefix) or not.
        await Released(Token("alice"), "alice", "a-1", "by-subject");
        await Refused(Token("alice", change: c => c["plan"] = "pro"), "g", "model-not-licensed", "by-subject");

        // Scopes: all of them, from "scope" or from "scp" (a list, as Entra ID writes it).
        await Released(Token("bob", "keys models.read"), "bob", "s", "by-scope");
        await Released(Token("bob", "keys", c => c["scp"] = new JsonArray("models.read")), "bob", "s", "by-scope");
        await Refused(Token("bob", "keys"), "s", "no-entitlement");

        // Groups: any of them in the configured claim, a list or a single string; other types match nothing.
        await Released(Token("carol", change: c => c["roles"] = new JsonArray("x", "beta")), "carol", "g", "by-group");
        await Released(Token("carol", change: c => c["roles"] = "staff"), "carol", "g", "by-group");
        await Refused(Token("carol", change: c => c["groups"] = new JsonArray("beta")), "g", "no-entitlement");
        await Refused(Token("carol", change: c => c["roles"] = new JsonArray(1, true)), "g", "no-entitlement");
        await Refused(Token("carol", change: c => c["roles"] = new JsonObject { ["beta"] = "beta" }), "g", "no-entitlement");

        // Claims: each must be that one string; a number, an object or several values never match (and never 5xx).
        await Released(Token("dave", change: c => { c["plan"] = "pro"; c["tenant"] = "acme"; }), "dave", "z", "by-claim");
        await Refused(Token("dave", change: c => c["plan"] = "pro"), "z", "no-entitlement");
        await Refused(Token("dave", change: c => { c["plan"] = "free"; c["tenant"] = "acme"; }), "z", "no-entitlement");
        await Refused(Token("dave", change: c => { c["plan"] = 5; c["tenant"] = "acme"; }), "z", "no-entitlement");
        await Refused(Token("dave", change: c => { c["plan"] = new JsonObject { ["pro"] = true }; c["tenant"] = "acme"; }), "z", "no-entitlement");
        await Refused(Token("dave", change: c => { c["plan"] = new JsonArray("pro", "free"); c["tenant"] = "acme"; }), "z", "no-entitlement");

        // Issuer exactly: another trusted issuer's user with the same claims gets nothing; an ended rule matches no one.
        JsonObject otherClaims = other.Claims("alice", "keys", now);
        otherClaims["plan"] = "pro";
        otherClaims["tenant"] = "acme";
        await Refused(other.Sign(otherClaims), "z", "no-entitlement");
        await Refused(Token("erin"), "z", "no-entitlement");

        // The server's own licence tokens work exactly as before.
        Licence licence = await server.CreateLicenceAsync(admin, "own", ["z"]);
        (await server.ReleaseAndOpenAsync(await server.LicenceTokenAsync(licence), licence, "z", "latest", device)).Key.Dispose();

        // Users were created at their first release under a rule only.
        Api users = await server.GetAsync("/v1/admin/users?issuer=" + Uri.EscapeDataString(idp.Issuer), admin);
        users.AssertStatus(HttpStatusCode.OK);
        Assert.Equal(["alice", "bob", "carol", "dave"], users.Json.GetProperty("items").EnumerateArray().Select(u => u.GetProperty("subject").GetString()!).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task A_licence_for_the_issuer_and_subject_takes_precedence_and_a_device_takes_one_slot()
    {
        using var idp = new ExternalIssuer("https://idp.example", _directory.Sub("idp.json"));
        await using TestServer server = await TestServer.StartAsync(o =>
        {
            o.TrustedIssuers = [new() { Issuer = idp.Issuer, JwksFile = idp.JwksFile }];
            o.Entitlements.Rules = [Rule("everyone", idp.Issuer, ["m"], maxDevices: 1)];
        });
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        using HpkeKeyPair first = HpkeKeyPair.Generate();
        using HpkeKeyPair second = HpkeKeyPair.Generate();
        string token = idp.Token("u", "keys", server.Now);

        (await server.ReleaseAsync(token, "m", "latest", first)).AssertStatus(HttpStatusCode.OK);
        (await server.ReleaseAsync(token, "m", "latest", second)).AssertProblem(HttpStatusCode.Forbidden, "device-limit");
        Assert.Equal(1, server.Database.Count("SELECT COUNT(*) FROM user_devices"));

        // A licence for (issuer, u) now decides: the first device moves to it (its user slot is freed), the second fits.
        Licence licence = await server.CreateLicenceAsync(admin, "u", ["m"], maxDevices: 2, issuer: idp.Issuer);
        (await server.ReleaseAsync(token, "m", "latest", first)).AssertStatus(HttpStatusCode.OK);
        JsonElement record = await LastRecordAsync(server, admin);
        Assert.Equal(licence.Id, record.GetProperty("licenceId").GetString());
        Assert.Equal(JsonValueKind.Null, record.GetProperty("attributes").ValueKind);
        (await server.ReleaseAsync(token, "m", "latest", second)).AssertStatus(HttpStatusCode.OK);
        Assert.Equal(0, server.Database.Count("SELECT COUNT(*) FROM user_devices"));
        Assert.Equal(2, server.Database.Count($"SELECT COUNT(*) FROM devices WHERE licence_id = '{licence.Id}'"));

        // A revoked licence still takes precedence: the rule does not apply again.
        (await server.PostAsync($"/v1/admin/licences/{licence.Id}/revoke", null, admin)).AssertStatus(HttpStatusCode.OK);
        (await server.ReleaseAsync(token, "m", "latest", first)).AssertProblem(HttpStatusCode.Forbidden, "licence-revoked");
    }

    [Fact]
    public async Task A_blocked_user_is_refused_until_unblocked_and_a_removed_device_frees_its_slot()
    {
        using var idp = new ExternalIssuer("https://idp.example", _directory.Sub("idp.json"));
        await using TestServer server = await TestServer.StartAsync(o =>
        {
            o.TrustedIssuers = [new() { Issuer = idp.Issuer, JwksFile = idp.JwksFile }];
            o.Entitlements.Rules = [Rule("one-device", idp.Issuer, ["m"], maxDevices: 1)];
        });
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        using HpkeKeyPair first = HpkeKeyPair.Generate();
        using HpkeKeyPair second = HpkeKeyPair.Generate();
        string token = idp.Token("user@idp", "keys", server.Now);
        (await server.ReleaseAsync(token, "m", "latest", first)).AssertStatus(HttpStatusCode.OK);

        Api list = await server.GetAsync("/v1/admin/users", admin);
        list.AssertStatus(HttpStatusCode.OK);
        JsonElement user = Assert.Single(list.Json.GetProperty("items").EnumerateArray());
        long id = user.GetProperty("userId").GetInt64();
        Assert.Equal(idp.Issuer, user.GetProperty("issuer").GetString());
        Assert.Equal(1, user.GetProperty("devices").GetInt64());
        Assert.Equal(JsonValueKind.Null, user.GetProperty("blockedAt").ValueKind);

        Api shown = await server.GetAsync($"/v1/admin/users/{id}", admin);
        shown.AssertStatus(HttpStatusCode.OK);
        string thumbprint = first.PublicKey.Thumbprint;
        JsonElement device = Assert.Single(shown.Json.GetProperty("devices").EnumerateArray());
        Assert.Equal(thumbprint, device.GetProperty("thumbprint").GetString());
        Assert.Equal("one-device", device.GetProperty("rule").GetString());
        Assert.Equal("key.released", Assert.Single(shown.Json.GetProperty("releases").EnumerateArray()).GetProperty("event").GetString());
        Assert.Equal(thumbprint, Assert.Single((await server.GetAsync($"/v1/admin/users/{id}/devices", admin)).Json.GetProperty("items").EnumerateArray()).GetProperty("thumbprint").GetString());

        // Blocked: refused at the next release with a signed 403 (a client drops its lease on it); audited.
        Api blocked = await server.PostAsync($"/v1/admin/users/{id}/block", null, admin);
        blocked.AssertStatus(HttpStatusCode.OK);
        Assert.Equal(JsonValueKind.String, blocked.Json.GetProperty("blockedAt").ValueKind);
        JsonElement blockRecord = await LastRecordAsync(server, admin);
        Assert.Equal("user.blocked", blockRecord.GetProperty("event").GetString());
        Assert.Equal("user@idp", blockRecord.GetProperty("attributes").GetProperty("user.subject").GetString());
        Api refused = await server.ReleaseAsync(token, "m", "latest", first);
        refused.AssertProblem(HttpStatusCode.Forbidden, "user-blocked");
        Assert.Equal(JsonValueKind.String, refused.Json.GetProperty("signature").ValueKind);

        // Blocking again changes nothing and records nothing; unblocking lets the device in again.
        long records = (await LastRecordAsync(server, admin)).GetProperty("id").GetInt64();
        (await server.PostAsync($"/v1/admin/users/{id}/block", null, admin)).AssertStatus(HttpStatusCode.OK);
        Assert.Equal(records, (await LastRecordAsync(server, admin)).GetProperty("id").GetInt64());
        (await server.PostAsync($"/v1/admin/users/{id}/unblock", null, admin)).AssertStatus(HttpStatusCode.OK);
        Assert.Equal("user.unblocked", (await LastRecordAsync(server, admin)).GetProperty("event").GetString());
        (await server.ReleaseAsync(token, "m", "latest", first)).AssertStatus(HttpStatusCode.OK);

        // One slot: the second device is refused until the first is removed.
        (await server.ReleaseAsync(token, "m", "latest", second)).AssertProblem(HttpStatusCode.Forbidden, "device-limit");
        Api removed = await server.SendAsync(HttpMethod.Delete, $"/v1/admin/users/{id}/devices/{thumbprint}", null, admin);
        removed.AssertStatus(HttpStatusCode.OK);
        Assert.Equal("user.device-removed", (await LastRecordAsync(server, admin)).GetProperty("event").GetString());
        (await server.ReleaseAsync(token, "m", "latest", second)).AssertStatus(HttpStatusCode.OK);

        (await server.SendAsync(HttpMethod.Delete, $"/v1/admin/users/{id}/devices/{thumbprint}", null, admin)).AssertProblem(HttpStatusCode.NotFound, "device-not-found");
        (await server.GetAsync("/v1/admin/users/999999", admin)).AssertProblem(HttpStatusCode.NotFound, "user-not-found");
        (await server.PostAsync("/v1/admin/users/999999/block", null, admin)).AssertProblem(HttpStatusCode.NotFound, "user-not-found");
        (await server.GetAsync("/v1/admin/users/abc", admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        (await server.GetAsync("/v1/admin/users?limit=0", admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        (await server.GetAsync("/v1/admin/users", token)).AssertProblem(HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task Users_are_listed_in_pages_and_found_by_issuer_and_subject()
    {
        using var idp = new ExternalIssuer("https://idp.example", _directory.Sub("idp.json"));
        await using TestServer server = await TestServer.StartAsync(o =>
        {
            o.TrustedIssuers = [new() { Issuer = idp.Issuer, JwksFile = idp.JwksFile }];
            o.Entitlements.Rules = [Rule("all", idp.Issuer, ["m"])];
        });
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        for (int i = 0; i < 5; i++)
        {
            (await server.ReleaseAsync(idp.Token($"u{i}", "keys", server.Now), "m", "latest", device)).AssertStatus(HttpStatusCode.OK);
        }

        var subjects = new List<string>();
        string? after = null;
        do
        {
            Api page = await server.GetAsync("/v1/admin/users?limit=2" + (after is null ? string.Empty : "&after=" + after), admin);
            page.AssertStatus(HttpStatusCode.OK);
            subjects.AddRange(page.Json.GetProperty("items").EnumerateArray().Select(u => u.GetProperty("subject").GetString()!));
            after = page.Json.GetProperty("next").ValueKind == JsonValueKind.Null ? null : page.Json.GetProperty("next").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        while (after is not null);

        Assert.Equal(["u0", "u1", "u2", "u3", "u4"], subjects);
        Assert.Empty((await server.GetAsync("/v1/admin/users?issuer=https%3A%2F%2Fnobody.example", admin)).Json.GetProperty("items").EnumerateArray());

        // A subject finds its user, alone or with its issuer; the wrong issuer finds none.
        string Subjects(Api page) => string.Join(",", page.Json.GetProperty("items").EnumerateArray().Select(u => u.GetProperty("subject").GetString()));
        Assert.Equal("u3", Subjects(await server.GetAsync("/v1/admin/users?subject=u3", admin)));
        Assert.Equal("u3", Subjects(await server.GetAsync("/v1/admin/users?subject=u3&issuer=" + Uri.EscapeDataString(idp.Issuer), admin)));
        Assert.Equal(string.Empty, Subjects(await server.GetAsync("/v1/admin/users?subject=u3&issuer=https%3A%2F%2Fnobody.example", admin)));
        Assert.Equal(string.Empty, Subjects(await server.GetAsync("/v1/admin/users?subject=U3", admin)));
        (await server.GetAsync("/v1/admin/users?subject=", admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
    }

    [Fact]
    public async Task The_rule_file_is_reloaded_without_a_restart_and_a_bad_file_keeps_the_rules_in_force()
    {
        using var idp = new ExternalIssuer("https://idp.example", _directory.Sub("idp.json"));
        string rules = _directory.Sub("rules.json");
        WriteRules(rules, RulesJson(idp.Issuer, "v1", "a"));
        await using TestServer server = await TestServer.StartAsync(o =>
        {
            o.TrustedIssuers = [new() { Issuer = idp.Issuer, JwksFile = idp.JwksFile }];
            o.Entitlements.File = rules;
        });
        string admin = await server.AdminTokenAsync();
        foreach (string model in new[] { "a", "b" })
        {
            await server.CreateModelAsync(admin, model);
            (await server.CreateVersionAsync(admin, model)).Key.Dispose();
        }

        using HpkeKeyPair device = HpkeKeyPair.Generate();
        string token = idp.Token("u", "keys", server.Now);
        EntitlementRuleSet set = server.App.Services.GetRequiredService<EntitlementRuleSet>();
        (await server.ReleaseAsync(token, "a", "latest", device)).AssertStatus(HttpStatusCode.OK);
        (await server.ReleaseAsync(token, "b", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");

        // A new file (written beside and moved into place, as a deployment would) applies without a restart.
        await ChangeAndWaitAsync(set, () => WriteRules(rules, RulesJson(idp.Issuer, "v2", "b")), (_, s) => s.Rules is [{ Name: "v2" }]);
        (await server.ReleaseAsync(token, "b", "latest", device)).AssertStatus(HttpStatusCode.OK);
        Assert.Equal("v2", (await LastRecordAsync(server, admin)).GetProperty("attributes").GetProperty("rule").GetString());
        (await server.ReleaseAsync(token, "a", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");

        // A bad file is refused with an error in the log, and the rules in force stay.
        RuleLoad refused = await ChangeAndWaitAsync(set, () => WriteRules(rules, """{"Rules": [{"Name": "v3", "Issuer": "x", "Models": []}]}"""), (load, _) => load.Error is not null);
        Assert.NotNull(refused.Error);
        Assert.Contains("Models", refused.Error, StringComparison.Ordinal);
        Assert.Contains(server.Logs.Lines, l => l.StartsWith("Error", StringComparison.Ordinal) && l.Contains("was not applied", StringComparison.Ordinal));
        Assert.Equal("v2", Assert.Single(set.Rules).Name);
        (await server.ReleaseAsync(token, "b", "latest", device)).AssertStatus(HttpStatusCode.OK);

        // So is a rule for an issuer that is not trusted (it could never grant anything), with the key and the fix.
        RuleLoad untrusted = await ChangeAndWaitAsync(set, () => WriteRules(rules, RulesJson("https://typo.example", "v3", "a")), (load, _) => load.Error is not null);
        Assert.Contains($"'{rules}' Rules:0:Issuer is 'https://typo.example', which is not one of the TrustedIssuers ('{idp.Issuer}')", untrusted.Error, StringComparison.Ordinal);
        Assert.Contains(server.Logs.Lines, l => l.StartsWith("Error", StringComparison.Ordinal) && l.Contains("https://typo.example", StringComparison.Ordinal));
        Assert.Equal("v2", Assert.Single(set.Rules).Name);
        (await server.ReleaseAsync(token, "b", "latest", device)).AssertStatus(HttpStatusCode.OK);

        // An edit in place (not a move) is seen as well.
        await ChangeAndWaitAsync(set, () => File.WriteAllText(rules, RulesJson(idp.Issuer, "v4", "a")), (_, s) => s.Rules is [{ Name: "v4" }]);
        (await server.ReleaseAsync(token, "a", "latest", device)).AssertStatus(HttpStatusCode.OK);
    }

    [Theory]
    [InlineData("""{"Rules": [{"Name": "r", "Issuer": "https://idp.example"}]}""", "Models names no models")]
    [InlineData("""{"Rules": [{"Name": "r", "Issuer": "https://idp.example", "Models": ["m"], "Plan": "pro"}]}""", "Unknown configuration key 'Rules:0:Plan'")]
    [InlineData("""{"Rules": [{"Name": "r", "Issuer": "https://idp.example", "Models": ["m"], "LeaseDuration": "a week"}]}""", "Rules:0:LeaseDuration")]
    [InlineData("""{"Rules": [{"Name": "r", "Issuer": "https://idp.example", "Models": ["m"], "NotAfter": "soon"}]}""", "NotAfter")]
    [InlineData("""{"Rules": [{"Name": "r", "Issuer": "https://idp.example", "Models": ["m"], "Claims": {"plan": ["pro"]}}]}""", "Rules:0:Claims:plan")]
    [InlineData("""{"Rules": [{"Name": "r", "Models": ["m"]}]}""", "Issuer is required")]
    [InlineData("""{"Rules": [{"Name": "r", "Issuer": "i", "Models": ["m"]}, {"Name": "r", "Issuer": "i", "Models": ["n"]}]}""", "used by an earlier rule")]
    [InlineData("""{"Rules": [{"Name": "r", "Issuer": "i", "Models": ["a*b"]}]}""", "Models:0")]
    [InlineData("""{"Rules": [""", "not a JSON object")]
    public async Task A_malformed_rule_file_is_refused_at_start_with_the_key_and_the_fix(string json, string expected)
    {
        string rules = _directory.Sub("rules.json");
        await File.WriteAllTextAsync(rules, json, TestContext.Current.CancellationToken);
        string data = _directory.Sub("data");
        var e = await Assert.ThrowsAsync<ServerConfigurationException>(() => TestServer.StartAsync(o => o.Entitlements.File = rules, data));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(data), "Nothing was created.");
    }

    [Fact]
    public async Task Malformed_inline_rules_are_refused_at_start()
    {
        var noModels = await Assert.ThrowsAsync<ServerConfigurationException>(() => TestServer.StartAsync(o => o.Entitlements.Rules = [Rule("r", "https://idp.example", [])]));
        Assert.Contains("Entitlements:Rules:0:Models names no models", noModels.Message, StringComparison.Ordinal);
        var tooMany = await Assert.ThrowsAsync<ServerConfigurationException>(() => TestServer.StartAsync(o => o.Entitlements.Rules = [Rule("r", "https://idp.example", ["m"], maxDevices: 0)]));
        Assert.Contains("Entitlements:Rules:0:MaxDevices", tooMany.Message, StringComparison.Ordinal);
        var both = await Assert.ThrowsAsync<ServerConfigurationException>(() => TestServer.StartAsync(o =>
        {
            o.Entitlements.Rules = [Rule("r", "https://idp.example", ["m"])];
            o.Entitlements.File = _directory.Sub("rules.json");
        }));
        Assert.Contains("both set", both.Message, StringComparison.Ordinal);

        // Through the configuration loader: a bad duration and an unknown key name the key.
        string config = _directory.Sub("config.json");
        await File.WriteAllTextAsync(config, """{"Entitlements": {"Rules": [{"Name": "r", "Issuer": "i", "Models": ["m"], "LeaseDuration": "forever"}]}}""", TestContext.Current.CancellationToken);
        var duration = Assert.Throws<ServerConfigurationException>(() => ServerConfiguration.Load(config, new Dictionary<string, string>()));
        Assert.Contains("Entitlements:Rules:0:LeaseDuration", duration.Message, StringComparison.Ordinal);
        await File.WriteAllTextAsync(config, """{"Entitlements": {"Rules": [{"Name": "r", "Issuer": "i", "Models": ["m"], "Group": "x"}]}}""", TestContext.Current.CancellationToken);
        var unknown = Assert.Throws<ServerConfigurationException>(() => ServerConfiguration.Load(config, new Dictionary<string, string>()));
        Assert.Contains("Entitlements:Rules:0:Group", unknown.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_rule_lease_is_its_own_and_capped_by_its_end()
    {
        using var idp = new ExternalIssuer("https://idp.example", _directory.Sub("idp.json"));
        var time = new ManualTime(new DateTimeOffset(2026, 11, 23, 10, 0, 0, TimeSpan.Zero));
        await using TestServer server = await TestServer.StartAsync(o =>
        {
            o.Time = time;
            o.TrustedIssuers = [new() { Issuer = idp.Issuer, JwksFile = idp.JwksFile }];
            EntitlementRuleOptions shortLease = Rule("short", idp.Issuer, ["m"]);
            shortLease.Subjects = ["s"];
            shortLease.LeaseDuration = TimeSpan.FromHours(2);
            EntitlementRuleOptions ending = Rule("ending", idp.Issuer, ["m"]);
            ending.NotAfter = "2026-11-24T00:00:00Z";
            o.Entitlements.Rules = [shortLease, ending];
        });
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        using HpkeKeyPair device = HpkeKeyPair.Generate();

        Api two = await server.ReleaseAsync(idp.Token("s", "keys", server.Now), "m", "latest", device);
        Assert.Equal(server.Now.AddHours(2), Release.From(two).LeaseExpiresAt);
        Api capped = await server.ReleaseAsync(idp.Token("t", "keys", server.Now), "m", "latest", device);
        Assert.Equal(new DateTimeOffset(2026, 11, 24, 0, 0, 0, TimeSpan.Zero), Release.From(capped).LeaseExpiresAt);

        time.Advance(TimeSpan.FromDays(1));
        (await server.ReleaseAsync(idp.Token("t", "keys", server.Now), "m", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "no-entitlement");
    }

    [Fact]
    public async Task The_device_limit_per_user_is_exact_under_1000_concurrent_releases()
    {
        const int users = 10, devicesPerUser = 5, maxDevices = 3, releases = 1000;
        using var idp = new ExternalIssuer("https://idp.example", _directory.Sub("idp.json"));
        await using TestServer server = await TestServer.StartAsync(o =>
        {
            TestServer.WithoutRateLimits(o);
            o.TrustedIssuers = [new() { Issuer = idp.Issuer, JwksFile = idp.JwksFile }];
            o.Entitlements.Rules = [Rule("three", idp.Issuer, ["m"], maxDevices)];
        });
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        string[] tokens = [.. Enumerable.Range(0, users).Select(u => idp.Token($"user-{u}", "keys", server.Now))];
        HpkeKeyPair[][] devices = [.. Enumerable.Range(0, users).Select(_ => Enumerable.Range(0, devicesPerUser).Select(_ => HpkeKeyPair.Generate()).ToArray())];
        try
        {
            var answers = new ConcurrentBag<(int User, int Device, Api Answer)>();
            await Parallel.ForEachAsync(
                Enumerable.Range(0, releases),
                new ParallelOptions { MaxDegreeOfParallelism = 32, CancellationToken = TestContext.Current.CancellationToken },
                async (i, _) =>
                {
                    int u = i % users;
                    int d = i / users % devicesPerUser;
                    answers.Add((u, d, await server.ReleaseAsync(tokens[u], "m", "latest", devices[u][d])));
                });

            Assert.Equal(releases, answers.Count);
            Assert.All(answers.Where(x => x.Answer.Status != HttpStatusCode.OK), x => x.Answer.AssertProblem(HttpStatusCode.Forbidden, "device-limit"));
            for (int u = 0; u < users; u++)
            {
                var admitted = answers.Where(x => x.User == u && x.Answer.Status == HttpStatusCode.OK).Select(x => x.Device).ToHashSet();
                Assert.Equal(maxDevices, admitted.Count);
                Assert.DoesNotContain(answers, x => x.User == u && x.Answer.Status != HttpStatusCode.OK && admitted.Contains(x.Device));
                Assert.Equal(maxDevices, server.Database.Count($"SELECT COUNT(*) FROM user_devices d JOIN users u ON u.user_id = d.user_id WHERE u.subject = 'user-{u}'"));
            }

            Assert.Equal(users, server.Database.Count("SELECT COUNT(*) FROM users"));
            Assert.Equal(answers.Count(x => x.Answer.Status == HttpStatusCode.OK), server.Database.Count("SELECT COUNT(*) FROM audit WHERE event = 'key.released'"));
            Assert.True((await server.GetAsync("/v1/admin/audit/verify", admin)).Json.GetProperty("verified").GetBoolean());
        }
        finally
        {
            foreach (HpkeKeyPair pair in devices.SelectMany(d => d))
            {
                pair.Dispose();
            }
        }
    }

    [Fact]
    public async Task A_schema_6_database_gets_the_user_tables_at_the_next_start()
    {
        string data = _directory.Sub("data");
        TestDatabase database;
        await using (TestServer first = await TestServer.StartAsync(dataDirectory: data))
        {
            string admin = await first.AdminTokenAsync();
            await first.CreateModelAsync(admin, "m");
            database = first.Database;
        }

        database.Execute("DROP TABLE user_devices; DROP TABLE users; DROP INDEX audit_by_subject; " + (database.IsPostgres ? "UPDATE schema_info SET version = 6;" : "PRAGMA user_version = 6;"));
        using var idp = new ExternalIssuer("https://idp.example", _directory.Sub("idp.json"));
        await using TestServer server = await TestServer.StartAsync(
            o =>
            {
                o.TrustedIssuers = [new() { Issuer = idp.Issuer, JwksFile = idp.JwksFile }];
                o.Entitlements.Rules = [Rule("all", idp.Issuer, ["m"])];
            },
            data);
        Assert.Equal(8L, server.Database.Count(server.Database.IsPostgres ? "SELECT max(version) FROM schema_info" : "PRAGMA user_version"));
        string token = await server.AdminTokenAsync();
        (await server.CreateVersionAsync(token, "m")).Key.Dispose();
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (await server.ReleaseAsync(idp.Token("u", "keys", server.Now), "m", "latest", device)).AssertStatus(HttpStatusCode.OK);
        Assert.Equal(1, server.Database.Count("SELECT COUNT(*) FROM users"));
        Assert.True((await server.GetAsync("/v1/admin/audit/verify", token)).Json.GetProperty("verified").GetBoolean());
    }

    /// <summary>The audit log's last record.</summary>
    internal static async Task<JsonElement> LastRecordAsync(ServerClient server, string admin)
    {
        JsonElement last = default;
        string? after = "0";
        while (after is not null)
        {
            Api page = await server.GetAsync($"/v1/admin/audit?limit=500&after={after}", admin);
            page.AssertStatus(HttpStatusCode.OK);
            foreach (JsonElement item in page.Json.GetProperty("items").EnumerateArray())
            {
                last = item;
            }

            after = page.Json.GetProperty("next").ValueKind == JsonValueKind.Null ? null : page.Json.GetProperty("next").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return last;
    }

    internal static string RulesJson(string issuer, string name, params string[] models) =>
        new JsonObject { ["Rules"] = new JsonArray(new JsonObject { ["Name"] = name, ["Issuer"] = issuer, ["Models"] = new JsonArray([.. models.Select(m => JsonValue.Create(m))]), ["MaxDevices"] = 5 }) }.ToJsonString();

    /// <summary>Writes the rule file as a deployment should: a new file beside it, moved into place.</summary>
    internal static void WriteRules(string path, string json)
    {
        string next = path + ".next";
        File.WriteAllText(next, json);
        File.Move(next, path, overwrite: true);
    }

    /// <summary>
    /// Makes a change to the rule file and waits for the reloads it causes until <paramref name="done"/> holds (a
    /// change may be seen as several file events, each a reload); the last reload's outcome.
    /// </summary>
    private static async Task<RuleLoad> ChangeAndWaitAsync(EntitlementRuleSet set, Action change, Func<RuleLoad, EntitlementRuleSet, bool> done)
    {
        Task<RuleLoad> next = set.NextReloadAsync();
        change();
        while (true)
        {
            RuleLoad load = await next.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
            next = set.NextReloadAsync();
            if (done(load, set))
            {
                return load;
            }
        }
    }
}
