using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;

namespace ModelSeal.Server.Tests;

/// <summary>Configuration checks, logging, rate limits, health, OpenAPI and a trusted external issuer.</summary>
public sealed class ServerTests
{
    [Fact]
    public void Unsafe_configuration_is_refused()
    {
        using var directory = new TempDirectory();

        // Plain HTTP off loopback; a missing directory option; a trusted issuer without a JWKS file or without an issuer.
        foreach (string url in new[] { "http://0.0.0.0:5380", "http://*:5380", "http://+:5380", "http://example.com:80", "http://10.1.2.3:80", "http://127.0.0.1:0;http://0.0.0.0:0", "ftp://127.0.0.1:21" })
        {
            var e = Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(new ServerOptions { DataDirectory = directory.Sub("a"), Urls = url }));
            Assert.Contains(url.Split(';')[^1], e.Message, StringComparison.Ordinal);
        }

        Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(new ServerOptions { DataDirectory = " " }));
        Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(new ServerOptions { DataDirectory = directory.Sub("b"), TrustedIssuers = [new() { Issuer = "https://idp.example" }] }));
        Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(new ServerOptions { DataDirectory = directory.Sub("b"), TrustedIssuers = [new() { JwksFile = directory.Sub("jwks.json") }] }));
        Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(new ServerOptions { DataDirectory = directory.Sub("b"), TokenLifetime = TimeSpan.Zero }));
        Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(new ServerOptions { DataDirectory = directory.Sub("b"), ReleasesPerMinutePerSubject = 0 }));
        Assert.False(Directory.Exists(directory.Sub("a")) || Directory.Exists(directory.Sub("b")), "Nothing is created before the options are valid.");

        // Loopback names, IPv6 loopback and https are fine; so is plain HTTP elsewhere when explicitly allowed.
        foreach ((string url, bool allow) in new[] { ("http://localhost:0", false), ("http://[::1]:0", false), ("http://0.0.0.0:0", true) })
        {
            WebApplication app = ServerHost.Build(new ServerOptions { DataDirectory = directory.Sub("ok"), Urls = url, AllowNonLoopbackHttp = allow, AdminCredentialOut = directory.Sub("ok.admin.credential") });
            ((IDisposable)app).Dispose();
        }
    }

    [Fact]
    [Trait("Store", "sqlite")]
    [Trait("MasterKey", "file")]
    public async Task An_unsafe_data_directory_is_refused()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        using var directory = new TempDirectory();
        string data = directory.Sub("data");
        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data))
        {
            Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/ready")).Status);

            // One server per data directory.
            var inUse = Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(new ServerOptions { DataDirectory = data }));
            Assert.Contains("in use", inUse.Message, StringComparison.Ordinal);
        }

        File.SetUnixFileMode(data, (UnixFileMode)Convert.ToInt32("755", 8));
        var e = Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(new ServerOptions { DataDirectory = data }));
        Assert.Contains("chmod 700", e.Message, StringComparison.Ordinal);
        File.SetUnixFileMode(data, (UnixFileMode)Convert.ToInt32("700", 8));

        foreach (string file in new[] { "master.keys", "token-signing.key", "modelseal.db" })
        {
            string path = Path.Combine(data, file);
            File.SetUnixFileMode(path, (UnixFileMode)Convert.ToInt32("640", 8));
            e = Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(new ServerOptions { DataDirectory = data }));
            Assert.Contains(file, e.Message, StringComparison.Ordinal);
            Assert.Contains("chmod 600", e.Message, StringComparison.Ordinal);
            File.SetUnixFileMode(path, (UnixFileMode)Convert.ToInt32("600", 8));
        }

        // A lost master key file is not silently replaced while wrapped keys exist; a damaged one is refused.
        string masterKeys = Path.Combine(data, "master.keys");
        File.Move(masterKeys, masterKeys + ".bak");
        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data))
        {
            // Without data keys a fresh master key is fine; create one so that the next start needs it.
            string admin = await server.AdminTokenAsync();
            await server.CreateModelAsync(admin, "m");
            (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        }

        File.Delete(masterKeys);
        e = Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(new ServerOptions { DataDirectory = data }));
        Assert.Contains("master.keys", e.Message, StringComparison.Ordinal);
        File.WriteAllText(masterKeys, "v1 not-hex\n");
        File.SetUnixFileMode(masterKeys, (UnixFileMode)Convert.ToInt32("600", 8));
        e = Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(new ServerOptions { DataDirectory = data }));
        Assert.Contains("line 1", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("not-hex", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Logs_contain_no_keys_credentials_or_tokens()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "logged");
        (Release created, ModelKey key) = await server.CreateVersionAsync(admin, "logged");
        key.Dispose();
        Licence licence = await server.CreateLicenceAsync(admin, "log-subject", ["logged"], maxDevices: 1);
        string token = await server.LicenceTokenAsync(licence);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        using HpkeKeyPair other = HpkeKeyPair.Generate();
        (await server.ReleaseAndOpenAsync(token, licence, "logged", "latest", device)).Key.Dispose();
        await server.ReleaseAsync(token, "logged", "latest", other);
        await server.ReleaseAsync(token + "x", "logged", "latest", device);
        await server.PostAsync("/v1/token", new { grantType = "licence", licenceId = licence.Id, credential = licence.Credential + "x" });
        await server.PostAsync("/v1/token", new { grantType = "admin", credential = server.AdminCredential + "x" });
        await server.PostAsync("/v1/admin/master-key/rotate", null, admin);
        await server.PostAsync("/v1/admin/models/logged/versions/1/destroy", null, admin);
        await server.GetAsync("/v1/admin/audit", admin);

        string[] lines = server.Logs.Lines.ToArray();
        List<string> leaked = Secrets.FoundIn(lines);
        Assert.True(leaked.Count == 0, $"Logged: {string.Join(", ", leaked)}");
        Assert.True(Secrets.Count >= 8, "The secrets of this flow were registered.");

        // The logs are there, with ids, thumbprints and outcomes.
        Assert.Contains(lines, l => l.Contains("Key released", StringComparison.Ordinal) && l.Contains(created.KeyId, StringComparison.Ordinal) && l.Contains(device.PublicKey.Thumbprint, StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("device-limit", StringComparison.Ordinal) && l.Contains(licence.Id, StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("Token refused", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("Bearer token rejected", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("Master key rotated to v2", StringComparison.Ordinal));
        if (!TestBackends.Pkcs11)
        {
            string masterKeyLine = File.ReadAllLines(Path.Combine(server.DataDirectory, "master.keys"))[0].Split(' ')[1];
            Assert.DoesNotContain(lines, l => l.Contains(masterKeyLine, StringComparison.OrdinalIgnoreCase));
        }
    }

    [Fact]
    public async Task Releases_over_the_rate_limit_are_429_with_retry_after()
    {
        await using TestServer server = await TestServer.StartAsync(o => o.ReleasesPerMinutePerSubject = 2);
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        Licence licence = await server.CreateLicenceAsync(admin, "limited", ["m"]);
        string token = await server.LicenceTokenAsync(licence);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", device)).Key.Dispose();
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", device)).Key.Dispose();
        Api limited = await server.ReleaseAsync(token, "m", "latest", device);
        limited.AssertProblem(HttpStatusCode.TooManyRequests, "rate-limited");
        Assert.True(limited.Headers.RetryAfter?.Delta > TimeSpan.Zero, limited.Headers.ToString());

        // Another subject has its own budget; admin calls are not release calls.
        Licence second = await server.CreateLicenceAsync(admin, "other-subject", ["m"]);
        (await server.ReleaseAndOpenAsync(await server.LicenceTokenAsync(second), second, "m", "latest", device)).Key.Dispose();
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/v1/admin/models", admin)).Status);
    }

    [Fact]
    public async Task Requests_over_the_client_limit_are_429()
    {
        await using TestServer server = await TestServer.StartAsync(o => o.RequestsPerMinutePerClient = 3);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/live")).Status);
        }

        Api limited = await server.PostAsync("/v1/token", new { grantType = "admin", credential = server.AdminCredential });
        limited.AssertProblem(HttpStatusCode.TooManyRequests, "rate-limited");
        Assert.NotNull(limited.Headers.RetryAfter);
    }

    [Fact]
    public async Task Health_and_openapi_are_anonymous_and_hold_no_secrets()
    {
        await using TestServer server = await TestServer.StartAsync();
        Api live = await server.GetAsync("/health/live");
        Assert.Equal(HttpStatusCode.OK, live.Status);
        Api ready = await server.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.Status);
        Assert.Equal("ready", ready.Json.GetProperty("status").GetString());
        Assert.Equal("no-store", ready.Headers.CacheControl?.ToString());

        Api openApi = await server.GetAsync("/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, openApi.Status);
        JsonElement paths = openApi.Json.GetProperty("paths");
        foreach (string path in new[] { "/v1/token", "/v1/keys/release", "/v1/admin/models", "/v1/admin/models/{modelId}/versions", "/v1/admin/licences", "/v1/admin/master-key/rotate", "/v1/admin/audit", "/health/ready" })
        {
            Assert.True(paths.TryGetProperty(path, out _), $"{path} missing from the OpenAPI document");
        }

        JsonElement release = paths.GetProperty("/v1/keys/release").GetProperty("post");
        Assert.True(release.GetProperty("requestBody").GetProperty("content").TryGetProperty("application/json", out _));
        Assert.Contains("bearer", openApi.Json.GetProperty("components").GetProperty("securitySchemes").EnumerateObject().Select(p => p.Name));
        Assert.DoesNotContain(server.AdminCredential, openApi.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("\"example\"", openApi.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tokens_of_a_trusted_issuer_release_keys_by_subject()
    {
        const string Authority = "https://idp.example/realms/apps";
        using var directory = new TempDirectory();
        using RSA rsa = RSA.Create(2048);
        using ECDsa ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        RSAParameters rp = rsa.ExportParameters(false);
        ECParameters ep = ec.ExportParameters(false);
        var jwks = new JsonObject
        {
            ["keys"] = new JsonArray(
                new JsonObject { ["kty"] = "RSA", ["kid"] = "rsa-1", ["use"] = "sig", ["alg"] = "RS256", ["n"] = TestServer.Base64Url(rp.Modulus), ["e"] = TestServer.Base64Url(rp.Exponent) },
                new JsonObject { ["kty"] = "EC", ["kid"] = "ec-1", ["crv"] = "P-256", ["x"] = TestServer.Base64Url(ep.Q.X), ["y"] = TestServer.Base64Url(ep.Q.Y) }),
        };
        string jwksFile = directory.Sub("jwks.json");
        await File.WriteAllTextAsync(jwksFile, jwks.ToJsonString(), TestContext.Current.CancellationToken);

        await using TestServer server = await TestServer.StartAsync(o =>
        {
            o.TrustedIssuers = [new TrustedIssuerOptions { Issuer = Authority, JwksFile = jwksFile }];
        });
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        Licence licence = await server.CreateLicenceAsync(admin, "user-42@idp", ["m"], issuer: Authority);
        Assert.Equal(string.Empty, licence.Credential);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        long now = server.Now.ToUnixTimeSeconds();
        JsonObject Claims(string iss = Authority, string sub = "user-42@idp") => new()
        {
            ["iss"] = iss, ["aud"] = "modelseal", ["sub"] = sub, ["scope"] = "openid keys", ["iat"] = now, ["nbf"] = now, ["exp"] = now + 300,
            ["lic"] = "lic_someone_elses",
        };

        string rs256 = ExternalIssuer.Sign("RS256", "rsa-1", Claims(), data => rsa.SignData(data, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1));
        string es256 = ExternalIssuer.Sign("ES256", "ec-1", Claims(), data => ec.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation));
        (await server.ReleaseAndOpenAsync(rs256, licence, "m", "latest", device)).Key.Dispose();
        (await server.ReleaseAndOpenAsync(es256, licence, "m", "latest", device)).Key.Dispose();

        // The JWKS key is bound to its issuer and its declared algorithm; a subject without a licence gets none.
        string ownIssuer = ExternalIssuer.Sign("RS256", "rsa-1", Claims(iss: "modelseal:server"), data => rsa.SignData(data, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1));
        string ps256 = ExternalIssuer.Sign("PS256", "rsa-1", Claims(), data => rsa.SignData(data, HashAlgorithmName.SHA256, RSASignaturePadding.Pss));
        (await server.ReleaseAsync(ownIssuer, "m", "latest", device)).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        (await server.ReleaseAsync(ps256, "m", "latest", device)).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        string stranger = ExternalIssuer.Sign("RS256", "rsa-1", Claims(sub: "nobody"), data => rsa.SignData(data, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1));
        (await server.ReleaseAsync(stranger, "m", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "licence-revoked");

        // The issuer is in the audit record of every release and refusal on this path.
        Assert.Equal(0, server.Database.Count($"SELECT COUNT(*) FROM audit WHERE event IN ('key.released', 'key.refused') AND (issuer IS NULL OR issuer <> '{Authority}')"));
        Assert.Equal(2, server.Database.Count($"SELECT COUNT(*) FROM audit WHERE event = 'key.released' AND licence_id = '{licence.Id}'"));

        // A licence claimed by (issuer, subject) has no credential to exchange.
        (await server.PostAsync("/v1/token", new { grantType = "licence", licenceId = licence.Id, credential = "anything-at-all" })).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task An_external_token_does_not_claim_a_credential_licence_by_its_subject()
    {
        // The flaw: a token of a trusted issuer whose sub equalled a credential licence's subject got that licence's
        // keys without its credential, and used up its device slots.
        const string Authority = "https://idp.example/realms/apps";
        using var directory = new TempDirectory();
        using ECDsa ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        ECParameters ep = ec.ExportParameters(false);
        string jwksFile = directory.Sub("jwks.json");
        await File.WriteAllTextAsync(jwksFile, new JsonObject { ["keys"] = new JsonArray(new JsonObject { ["kty"] = "EC", ["kid"] = "ec-1", ["crv"] = "P-256", ["x"] = TestServer.Base64Url(ep.Q.X), ["y"] = TestServer.Base64Url(ep.Q.Y) }) }.ToJsonString(), TestContext.Current.CancellationToken);
        await using TestServer server = await TestServer.StartAsync(o =>
        {
            o.TrustedIssuers = [new TrustedIssuerOptions { Issuer = Authority, JwksFile = jwksFile }];
        });
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        Licence licence = await server.CreateLicenceAsync(admin, "customer-7", ["m"], maxDevices: 1);
        long now = server.Now.ToUnixTimeSeconds();
        var claims = new JsonObject { ["iss"] = Authority, ["aud"] = "modelseal", ["sub"] = "customer-7", ["scope"] = "keys", ["iat"] = now, ["nbf"] = now, ["exp"] = now + 300, ["lic"] = licence.Id };
        string external = ExternalIssuer.Sign("ES256", "ec-1", claims, data => ec.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation));

        using HpkeKeyPair intruder = HpkeKeyPair.Generate();
        (await server.ReleaseAsync(external, "m", "latest", intruder)).AssertProblem(HttpStatusCode.Forbidden, "licence-revoked");
        Assert.Equal(0, server.Database.Count($"SELECT COUNT(*) FROM devices WHERE licence_id = '{licence.Id}'"));

        // The licence's own device still gets its one slot.
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (await server.ReleaseAndOpenAsync(await server.LicenceTokenAsync(licence), licence, "m", "latest", device)).Key.Dispose();
    }
}
