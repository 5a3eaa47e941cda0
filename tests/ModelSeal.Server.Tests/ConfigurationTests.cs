using System.Collections;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Configuration;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;

namespace ModelSeal.Server.Tests;

/// <summary>
/// ServerConfiguration.Load (a JSON file, MODELSEAL_ environment variables, overrides), its reference in
/// docs/deploy.md, refusals before anything is created, and trusted issuers configured from a file.
/// </summary>
public sealed class ConfigurationTests
{
    /// <summary>The only ServerOptions property that is not configuration (documented as code-only).</summary>
    private static readonly HashSet<string> CodeOnly = new(StringComparer.Ordinal) { nameof(ServerOptions.Time) };

    private static readonly Hashtable NoEnvironment = [];

    private static readonly string[] Models = ["m"];

    /// <summary>docs/deploy.md, found above the test binaries.</summary>
    private static string DeployGuide =>
        Enumerable.Range(0, 10).Select(up => Path.GetFullPath(Path.Combine([AppContext.BaseDirectory, .. Enumerable.Repeat("..", up), "docs", "deploy.md"]))).First(File.Exists);

    [Fact]
    public void Every_setting_is_settable_from_a_file_and_the_environment_and_documented()
    {
        using var directory = new TempDirectory();
        (List<ConfigurationReference.Setting> settings, List<string> problems) = ConfigurationReference.Enumerate(typeof(ServerOptions), ServerConfiguration.Load(null, NoEnvironment), CodeOnly);
        Assert.Contains(settings, s => s.Key == "Database:Provider");
        Assert.Contains(settings, s => s.Key == "TrustedIssuers:0:AdminSubjects");

        string file = directory.Sub("all.json");
        File.WriteAllText(file, ConfigurationReference.Json(settings));
        problems.AddRange(ConfigurationReference.NotReached(settings, ServerConfiguration.Load(file, NoEnvironment), "in a JSON file"));
        problems.AddRange(ConfigurationReference.NotReached(settings, ServerConfiguration.Load(null, ConfigurationReference.Environment(settings)), "in the environment"));
        problems.AddRange(ConfigurationReference.Undocumented(settings, File.ReadAllText(DeployGuide)));
        Assert.True(problems.Count == 0, string.Join("\n", problems));

        // The code-only exception is documented as such.
        Assert.Contains("| `Time` |", File.ReadAllText(DeployGuide), StringComparison.Ordinal);
    }

    [Fact]
    public void The_example_file_in_the_deployment_guide_loads()
    {
        using var directory = new TempDirectory();
        string guide = File.ReadAllText(DeployGuide);
        int start = guide.IndexOf("```json\n", guide.IndexOf("An example `/etc/modelseal/server.json`", StringComparison.Ordinal), StringComparison.Ordinal) + "```json\n".Length;
        string file = directory.Sub("server.json");
        File.WriteAllText(file, guide[start..guide.IndexOf("```", start, StringComparison.Ordinal)]);

        ServerOptions example = ServerConfiguration.Load(file, NoEnvironment);
        Assert.Equal(("/var/lib/modelseal", DatabaseOptions.Postgres, MasterKeyOptions.Pkcs11), (example.DataDirectory, example.Database.Provider, example.MasterKey.Provider));
        Assert.Equal(2, Assert.Single(example.TrustedIssuers).AdminSubjects.Count);
    }

    [Fact]
    public void The_reference_check_reports_a_setting_that_cannot_be_set_or_is_undocumented()
    {
        using var directory = new TempDirectory();
        (List<ConfigurationReference.Setting> settings, List<string> problems) = ConfigurationReference.Enumerate(typeof(ProbeOptions), new ProbeOptions(), new HashSet<string>());
        string file = directory.Sub("probe.json");
        File.WriteAllText(file, ConfigurationReference.Json(settings));
        var loaded = new ConfigurationBuilder().AddJsonFile(file).Build().Get<ProbeOptions>()!;
        problems.AddRange(ConfigurationReference.NotReached(settings, loaded, "in a JSON file"));
        problems.AddRange(ConfigurationReference.Undocumented(settings, "| `Documented` | string | | `MODELSEAL_Documented` |\n| `Section:Items:n:Name` | string | | `MODELSEAL_Section__Items__n__Name` |\n| `Section:Flag` | bool | | (none) |\n"));

        Assert.Equal(
            [
                "ReadOnly is not settable (no public setter), so no configuration can set it",
                "PrivateSetter is not settable (no public setter), so no configuration can set it",
                "Undocumented has no row in the configuration reference",
                "Section:Flag's row does not show the environment variable MODELSEAL_Section__Flag",
            ],
            problems);
        Assert.Contains(settings, s => s.Key == "Section:Items:0:Name" && s.DocumentedKey == "Section:Items:n:Name");
    }

    [Fact]
    public void Precedence_is_defaults_then_file_then_environment_then_overrides()
    {
        using var directory = new TempDirectory();
        string file = directory.Sub("server.json");
        File.WriteAllText(file, """{ "Urls": "http://127.0.0.1:1", "Issuer": "from-file", "Database": { "Provider": "postgres" } }""");
        var environment = new Hashtable { ["MODELSEAL_Urls"] = "http://127.0.0.1:2", ["MODELSEAL_DATABASE__CONNECTIONSTRINGENVIRONMENTVARIABLE"] = "DB" };
        var defaults = new Dictionary<string, string?> { ["DataDirectory"] = "default-data", ["Issuer"] = "from-defaults", ["Audience"] = "from-defaults" };
        var overrides = new Dictionary<string, string?> { ["Urls"] = "http://127.0.0.1:3" };

        ServerOptions all = ServerConfiguration.Load(file, environment, defaults, overrides);
        Assert.Equal(("default-data", "from-defaults", "from-file", "http://127.0.0.1:3", "postgres", "DB"), (all.DataDirectory, all.Audience, all.Issuer, all.Urls, all.Database.Provider, all.Database.ConnectionStringEnvironmentVariable));
        Assert.Equal("http://127.0.0.1:2", ServerConfiguration.Load(file, environment, defaults).Urls);
        Assert.Equal("http://127.0.0.1:1", ServerConfiguration.Load(file, NoEnvironment, defaults).Urls);
        Assert.Equal(new ServerOptions { DataDirectory = "." }.Urls, ServerConfiguration.Load(null, NoEnvironment).Urls);

        // Variables sharing the prefix that name no setting belong to other tools (the client verbs' MODELSEAL_SERVER).
        var others = new Hashtable { ["MODELSEAL_SERVER"] = "http://elsewhere", ["MODELSEAL_ADMIN_CREDENTIAL_FILE"] = "x", ["OTHER_Urls"] = "http://127.0.0.1:9" };
        Assert.Equal(new ServerOptions { DataDirectory = "." }.Urls, ServerConfiguration.Load(null, others).Urls);
    }

    [Theory]
    [InlineData("""{ "Urlz": "http://127.0.0.1:0" }""", "'Urlz'")]
    [InlineData("""{ "Database": { "Provder": "postgres" } }""", "'Database:Provder'")]
    [InlineData("""{ "TrustedIssuers": [ { "Issuer": "https://idp", "Audience": "x" } ] }""", "'TrustedIssuers:0:Audience'")]
    [InlineData("""{ "Time": "2026-01-01" }""", "'Time'")]
    [InlineData("""{ "LeaseDuration": "a week" }""", "'LeaseDuration'")]
    [InlineData("""{ "ReleasesPerMinutePerSubject": "many" }""", "'ReleasesPerMinutePerSubject'")]
    [InlineData("""{ "Metrics": { "Enabled": "yes" } }""", "'Metrics:Enabled'")]
    [InlineData("""{ "Metrics": false }""", "'Metrics'")]
    [InlineData("""{ "TrustedIssuers": [ { "Audiences": "modelseal" } ] }""", "'TrustedIssuers:0:Audiences'")]
    [InlineData("""{ "Urls": [ "http://127.0.0.1:0" ] }""", "'Urls'")]
    public void A_file_with_an_unknown_key_or_a_mistyped_value_is_refused_naming_the_key(string json, string key)
    {
        using var directory = new TempDirectory();
        string file = directory.Sub("server.json");
        File.WriteAllText(file, json);
        var e = Assert.Throws<ServerConfigurationException>(() => ServerConfiguration.Load(file, NoEnvironment));
        Assert.Contains(key, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("a week", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_environment_is_checked_like_the_file()
    {
        var e = Assert.Throws<ServerConfigurationException>(() => ServerConfiguration.Load(null, new Hashtable { ["MODELSEAL_Database__Provder"] = "postgres" }));
        Assert.Contains("'Database:Provder'", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ServerConfigurationException>(() => ServerConfiguration.Load(null, new Hashtable { ["MODELSEAL_TokenLifetime"] = "soon" }));
        Assert.Contains("'TokenLifetime'", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("soon", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_unreadable_or_malformed_file_is_refused_naming_the_path()
    {
        using var directory = new TempDirectory();
        string missing = directory.Sub("missing.json");
        string malformed = directory.Sub("malformed.json");
        File.WriteAllText(malformed, """{ "Urls": "http://127.0.0.1:0", """);
        string notAnObject = directory.Sub("array.json");
        File.WriteAllText(notAnObject, """[ 1, 2 ]""");
        string folder = directory.Sub("folder.json");
        Directory.CreateDirectory(folder);

        foreach (string file in new[] { missing, malformed, notAnObject, folder })
        {
            var e = Assert.Throws<ServerConfigurationException>(() => ServerConfiguration.Load(file, NoEnvironment));
            Assert.Contains($"'{file}'", e.Message, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("""{ "LeaseDuration": "-1.00:00:00" }""", "LeaseDuration")]
    [InlineData("""{ "TokenLifetime": "2.00:00:00" }""", "TokenLifetime")]
    [InlineData("""{ "Urls": "http://0.0.0.0:5380" }""", "Urls")]
    [InlineData("""{ "Database": { "Provider": "mysql" } }""", "Database:Provider")]
    [InlineData("""{ "Database": { "ConnectionString": "Host=db;Password=hunter2" } }""", "Database:Provider")]
    [InlineData("""{ "MasterKey": { "Provider": "pkcs11" } }""", "MasterKey:Pkcs11Module")]
    [InlineData("""{ "TrustedIssuers": [ { "JwksFile": "JWKS" } ] }""", "TrustedIssuers:0:Issuer")]
    [InlineData("""{ "TrustedIssuers": [ { "Issuer": "modelseal:server", "JwksFile": "JWKS" } ] }""", "TrustedIssuers:0:Issuer")]
    [InlineData("""{ "TrustedIssuers": [ { "Issuer": "https://a", "JwksFile": "JWKS" }, { "Issuer": "https://a", "JwksFile": "JWKS" } ] }""", "TrustedIssuers:1:Issuer")]
    [InlineData("""{ "TrustedIssuers": [ { "Issuer": "https://a" } ] }""", "TrustedIssuers:0:JwksFile")]
    [InlineData("""{ "TrustedIssuers": [ { "Issuer": "https://a", "JwksFile": "MISSING" } ] }""", "TrustedIssuers:0:JwksFile")]
    [InlineData("""{ "TrustedIssuers": [ { "Issuer": "https://a", "JwksFile": "JWKS", "Algorithms": [ "HS256" ] } ] }""", "TrustedIssuers:0:Algorithms:0")]
    [InlineData("""{ "TrustedIssuers": [ { "Issuer": "https://a", "JwksFile": "JWKS", "Algorithms": [ "RS256" ] } ] }""", "TrustedIssuers:0:Algorithms")]
    [InlineData("""{ "TrustedIssuers": [ { "Issuer": "https://a", "JwksFile": "JWKS", "Audiences": [ "" ] } ] }""", "TrustedIssuers:0:Audiences:0")]
    [InlineData("""{ "TrustedIssuers": [ { "Issuer": "https://a", "JwksFile": "JWKS", "AdminSubjects": [ " " ] } ] }""", "TrustedIssuers:0:AdminSubjects:0")]
    [InlineData("""{ "TrustedIssuers": [ { "Issuer": "https://a", "JwksFile": "JWKS", "TokenKind": "id" } ] }""", "TrustedIssuers:0:ClientIds")]
    [InlineData("""{ "TrustedIssuers": [ { "Issuer": "https://a", "JwksFile": "JWKS", "ClientIds": [ "app-1" ] } ] }""", "TrustedIssuers:0:ClientIds")]
    [InlineData("""{ "TrustedIssuers": [ { "Issuer": "https://a", "JwksFile": "JWKS", "TokenKind": "id", "ClientIds": [ "app-1" ], "Audiences": [ "modelseal" ] } ] }""", "TrustedIssuers:0:Audiences")]
    [InlineData("""{ "TrustedIssuers": [ { "Issuer": "https://a", "JwksFile": "JWKS", "TokenKind": "IdToken" } ] }""", "TrustedIssuers:0:TokenKind")]
    [InlineData("""{ "TrustedIssuers": [ { "Issuer": "https://a", "JwksFile": "JWKS", "TokenTypes": [ "" ] } ] }""", "TrustedIssuers:0:TokenTypes:0")]
    [InlineData("""{ "TrustedIssuers": [ { "Issuer": "https://a", "JwksFile": "JWKS", "TokenKind": "id", "ClientIds": [ "app-1" ], "TokenTypes": [ "JWT", "application/AT+JWT" ] } ] }""", "TrustedIssuers:0:TokenTypes:1")]
    [InlineData("""{ "TrustedIssuers": [ { "Issuer": "https://a", "JwksFile": "JWKS", "MaxLifetime": "00:00:00" } ] }""", "TrustedIssuers:0:MaxLifetime")]
    [InlineData("""{ "TrustedIssuers": [ { "Issuer": "https://a", "JwksFile": "JWKS", "MaxLifetime": "2.00:00:00" } ] }""", "TrustedIssuers:0:MaxLifetime")]
    public void An_invalid_value_is_refused_naming_the_key_before_anything_is_created(string json, string key)
    {
        using var directory = new TempDirectory();
        using var issuer = new ExternalIssuer("https://a", directory.Sub("jwks.json"));
        string file = directory.Sub("server.json");
        File.WriteAllText(file, json.Replace("\"JWKS\"", JsonValue.Create(issuer.JwksFile).ToJsonString(), StringComparison.Ordinal).Replace("\"MISSING\"", JsonValue.Create(directory.Sub("none.json")).ToJsonString(), StringComparison.Ordinal));
        string data = directory.Sub("data");
        ServerOptions options = ServerConfiguration.Load(file, NoEnvironment, new Dictionary<string, string?> { ["DataDirectory"] = data });

        var e = Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(options));
        Assert.Contains(key, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(data), "Nothing is created before the configuration is valid.");
    }

    [Fact]
    public void An_entitlement_rule_for_an_issuer_that_is_not_trusted_is_refused_at_start_naming_the_key_and_the_fix()
    {
        using var directory = new TempDirectory();
        using var issuer = new ExternalIssuer("https://a", directory.Sub("jwks.json"));
        string data = directory.Sub("data");
        var trusted = new JsonArray(new JsonObject { ["Issuer"] = issuer.Issuer, ["JwksFile"] = issuer.JwksFile });
        JsonObject Rule(string name, string iss) => new() { ["Name"] = name, ["Issuer"] = iss, ["Models"] = new JsonArray("m") };
        ServerOptions Load(JsonObject json)
        {
            string file = directory.Sub("server.json");
            File.WriteAllText(file, json.ToJsonString());
            return ServerConfiguration.Load(file, NoEnvironment, new Dictionary<string, string?> { ["DataDirectory"] = data });
        }

        // Inline: the second rule names an issuer that differs from the trusted one (a typo, a missing realm).
        ServerOptions inline = Load(new JsonObject { ["TrustedIssuers"] = trusted.DeepClone(), ["Entitlements"] = new JsonObject { ["Rules"] = new JsonArray(Rule("ok", "https://a"), Rule("typo", "https://a/realms/apps")) } });
        var e = Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(inline));
        Assert.Contains("Entitlements:Rules:1:Issuer is 'https://a/realms/apps', which is not one of the TrustedIssuers ('https://a')", e.Message, StringComparison.Ordinal);
        Assert.Contains("or add the issuer to TrustedIssuers", e.Message, StringComparison.Ordinal);

        // No trusted issuer at all: said so.
        ServerOptions none = Load(new JsonObject { ["Entitlements"] = new JsonObject { ["Rules"] = new JsonArray(Rule("r", "https://a")) } });
        e = Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(none));
        Assert.Contains("Entitlements:Rules:0:Issuer is 'https://a', but TrustedIssuers is empty", e.Message, StringComparison.Ordinal);

        // A rule file: the same check, naming the file's key.
        string rules = directory.Sub("rules.json");
        File.WriteAllText(rules, new JsonObject { ["Rules"] = new JsonArray(Rule("r", "https://b")) }.ToJsonString());
        ServerOptions fromFile = Load(new JsonObject { ["TrustedIssuers"] = trusted.DeepClone(), ["Entitlements"] = new JsonObject { ["File"] = rules } });
        e = Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(fromFile));
        Assert.Contains($"'{rules}' Rules:0:Issuer is 'https://b', which is not one of the TrustedIssuers", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(data), "Nothing is created before the configuration is valid.");

        // The same rules with the issuer trusted are accepted.
        File.WriteAllText(rules, new JsonObject { ["Rules"] = new JsonArray(Rule("r", "https://a")) }.ToJsonString());
        ServerOptionsValidator.Validate(fromFile);
        ServerOptionsValidator.Validate(Load(new JsonObject { ["TrustedIssuers"] = trusted.DeepClone(), ["Entitlements"] = new JsonObject { ["Rules"] = new JsonArray(Rule("r", "https://a")) } }));
    }

    [Fact]
    public async Task External_tokens_are_administrators_only_when_their_subject_is_listed()
    {
        using var directory = new TempDirectory();
        using var idp = new ExternalIssuer("https://idp.example/realms/apps", directory.Sub("jwks.json"));
        using var partner = new ExternalIssuer("https://partner.example", directory.Sub("partner-jwks.json"), kid: "partner-1");
        string file = directory.Sub("server.json");
        File.WriteAllText(file, new JsonObject
        {
            ["TrustedIssuers"] = new JsonArray(
                new JsonObject { ["Issuer"] = idp.Issuer, ["JwksFile"] = idp.JwksFile, ["AdminSubjects"] = new JsonArray("root@idp") },
                new JsonObject { ["Issuer"] = partner.Issuer, ["JwksFile"] = partner.JwksFile, ["Audiences"] = new JsonArray("api://modelseal"), ["Algorithms"] = new JsonArray("ES256") }),
        }.ToJsonString());
        ServerOptions configured = ServerConfiguration.Load(file, NoEnvironment);

        await using TestServer server = await TestServer.StartAsync(o => o.TrustedIssuers = configured.TrustedIssuers);
        DateTimeOffset now = server.Now;

        // The identity provider's "admin" scope alone is not administration: that would let whoever controls the
        // provider (or any of its users granted that scope) create licences for every model and release their keys.
        string outsider = idp.Token("mallory@idp", "admin keys", now);
        (await server.GetAsync("/v1/admin/models", outsider)).AssertProblem(HttpStatusCode.Forbidden, "forbidden");
        (await server.GetAsync("/v1/admin/licences", outsider)).AssertProblem(HttpStatusCode.Forbidden, "forbidden");
        (await server.PostAsync("/v1/admin/licences", new { subject = "mallory@idp", models = Models }, outsider)).AssertProblem(HttpStatusCode.Forbidden, "forbidden");

        // A listed subject is an administrator, with the admin scope (the same subject's keys-only token is not).
        string root = idp.Token("root@idp", "admin keys", now);
        (await server.GetAsync("/v1/admin/models", root)).AssertStatus(HttpStatusCode.OK);
        (await server.GetAsync("/v1/admin/licences", root)).AssertStatus(HttpStatusCode.OK);
        (await server.GetAsync("/v1/admin/models", idp.Token("root@idp", "keys", now))).AssertProblem(HttpStatusCode.Forbidden, "forbidden");

        // The same subject at another issuer is someone else.
        (await server.GetAsync("/v1/admin/models", partner.Token("root@idp", "admin keys", now, audience: "api://modelseal"))).AssertProblem(HttpStatusCode.Forbidden, "forbidden");

        // A keys token of an external issuer is still authenticated for key release (refused for want of a licence).
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        foreach (string keys in new[] { idp.Token("mallory@idp", "keys", now), partner.Token("user@partner", "keys", now, audience: "api://modelseal") })
        {
            Api release = await server.ReleaseAsync(keys, "m", "latest", device);
            Assert.True(release.Status is not (HttpStatusCode.Unauthorized or HttpStatusCode.InternalServerError), $"{(int)release.Status}: {release.Text}");
        }

        // Each issuer's tokens carry its own audiences: the partner's default audience is replaced, the idp's is the server's.
        (await server.ReleaseAsync(partner.Token("user@partner", "keys", now), "m", "latest", device)).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        (await server.ReleaseAsync(idp.Token("mallory@idp", "keys", now, audience: "api://modelseal"), "m", "latest", device)).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task Serve_with_a_config_file_accepts_a_trusted_issuers_listed_administrator()
    {
        using var directory = new TempDirectory();
        using var idp = new ExternalIssuer("https://idp.example", directory.Sub("jwks.json"));
        string file = directory.Sub("server.json");
        File.WriteAllText(file, new JsonObject
        {
            ["Metrics"] = new JsonObject { ["Enabled"] = false },
            ["TrustedIssuers"] = new JsonArray(new JsonObject { ["Issuer"] = idp.Issuer, ["JwksFile"] = idp.JwksFile, ["AdminSubjects"] = new JsonArray("ops@idp") }),
        }.ToJsonString());

        await using ServerProcess server = await ServerProcess.StartAsync(directory.Sub("data"), arguments: ["--config", file]);
        (await server.GetAsync("/v1/admin/models", idp.Token("ops@idp", "admin", DateTimeOffset.UtcNow))).AssertStatus(HttpStatusCode.OK);
        (await server.GetAsync("/v1/admin/models", idp.Token("dev@idp", "admin", DateTimeOffset.UtcNow))).AssertProblem(HttpStatusCode.Forbidden, "forbidden");
        // Metrics:Enabled=false from the file: no anonymous /metrics endpoint, so the fallback policy asks for a token.
        Assert.Equal(HttpStatusCode.NotFound, (await server.GetAsync("/metrics")).Status);
        Assert.Contains(idp.Issuer, server.Output, StringComparison.Ordinal);
    }

    /// <summary>A test-only options type with one setting of each kind the reference check must report.</summary>
    public sealed class ProbeOptions
    {
        public string Documented { get; set; } = "d";

        public string Undocumented { get; set; } = "u";

        public string ReadOnly { get; } = "r";

        public string PrivateSetter { get; private set; } = "p";

        public ProbeSection Section { get; set; } = new();
    }

    public sealed class ProbeSection
    {
        public bool Flag { get; set; }

        public IList<ProbeItem> Items { get; set; } = [];
    }

    public sealed class ProbeItem
    {
        public string? Name { get; set; }
    }
}
