using System.Net;
using System.Text.Json;
using ModelSeal.Hpke;

namespace ModelSeal.Server.Tests;

/// <summary>Key release end to end, and every refusal of protocol.md section 2.</summary>
public sealed class KeyReleaseTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task A_device_opens_a_model_sealed_by_the_publisher_with_the_released_key()
    {
        var time = new ManualTime(Start);
        await using TestServer server = await TestServer.StartAsync(o => o.Time = time);
        string admin = await server.AdminTokenAsync();

        // Publisher: creates the model and a version, receives the key sealed to its own key, seals the model.
        await server.CreateModelAsync(admin, "classifier");
        using HpkeKeyPair publisher = HpkeKeyPair.Generate();
        (Release created, ModelKey publisherKey) = await server.CreateVersionAsync(admin, "classifier", publisher: publisher);
        using ModelKey _ = publisherKey;
        Assert.Equal("1", created.Version);
        Assert.StartsWith("classifier.1.", created.KeyId, StringComparison.Ordinal);
        Assert.Matches("^classifier\\.1\\.[0-9a-f]{8}$", created.KeyId);
        Assert.Equal(KeyRelease.Suite, created.Suite);
        Assert.Equal(Start.AddHours(1), created.LeaseExpiresAt);

        byte[] model = await File.ReadAllBytesAsync(RepoPaths.SampleModel, TestContext.Current.CancellationToken);
        using var sealedModel = new MemoryStream();
        await SealedModel.SealAsync(new MemoryStream(model), sealedModel, publisherKey, new SealOptions { ModelId = "classifier", ModelVersion = created.Version }, cancellationToken: TestContext.Current.CancellationToken);

        // Device: a licence, a token, a release for "latest", opened with the device key.
        Licence licence = await server.CreateLicenceAsync(admin, "customer-1", ["classifier"], maxDevices: 2);
        string token = await server.LicenceTokenAsync(licence);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        Api answer = await server.ReleaseAsync(token, "classifier", "latest", device);
        Assert.Equal(HttpStatusCode.OK, answer.Status);
        Assert.Equal("2026-11-30T10:00:00Z", answer.Json.GetProperty("leaseExpiresAt").GetString());
        Assert.Equal(65, System.Buffers.Text.Base64Url.DecodeFromChars(answer.Json.GetProperty("enc").GetString()!).Length);
        Assert.Equal(48, System.Buffers.Text.Base64Url.DecodeFromChars(answer.Json.GetProperty("sealedKey").GetString()!).Length);
        Release release = Release.From(answer);
        Assert.Equal(("classifier", "1", created.KeyId), (release.ModelId, release.Version, release.KeyId));
        using ModelKey deviceKey = release.Open(device, licence.Subject);

        sealedModel.Position = 0;
        using DecryptedModel opened = await SealedModel.DecryptAsync(sealedModel, deviceKey, cancellationToken: TestContext.Current.CancellationToken);
        Assert.True(opened.Span.SequenceEqual(model), "The decrypted model differs from the original.");

        // The binding: another subject, another lease or another device cannot open it.
        Assert.Throws<HpkeOpenException>(() => KeyRelease.Open(device, release.Enc, release.SealedKey, "classifier", "1", release.KeyId, "someone-else", release.LeaseExpiresAt));
        Assert.Throws<HpkeOpenException>(() => KeyRelease.Open(device, release.Enc, release.SealedKey, "classifier", "1", release.KeyId, licence.Subject, release.LeaseExpiresAt.AddDays(1)));
        using HpkeKeyPair other = HpkeKeyPair.Generate();
        Assert.Throws<HpkeOpenException>(() => KeyRelease.Open(other, release.Enc, release.SealedKey, "classifier", "1", release.KeyId, licence.Subject, release.LeaseExpiresAt));

        // The audit log has the release, with the device's thumbprint and no key material.
        Api audit = await server.GetAsync("/v1/admin/audit?limit=500", admin);
        JsonElement record = audit.Json.GetProperty("items").EnumerateArray().Single(r => r.GetProperty("event").GetString() == "key.released");
        Assert.Equal(licence.Id, record.GetProperty("licenceId").GetString());
        Assert.Equal(device.PublicKey.Thumbprint, record.GetProperty("device").GetString());
        Assert.Equal("customer-1", record.GetProperty("subject").GetString());
        Assert.Equal(created.KeyId, record.GetProperty("keyId").GetString());
        Assert.Equal("127.0.0.1", record.GetProperty("client").GetString());
        Assert.Equal("ok", record.GetProperty("outcome").GetString());
    }

    [Fact]
    public async Task The_lease_is_capped_by_the_licence_expiry()
    {
        var time = new ManualTime(Start);
        await using TestServer server = await TestServer.StartAsync(o => o.Time = time);
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (_, ModelKey key) = await server.CreateVersionAsync(admin, "m");
        key.Dispose();
        Licence licence = await server.CreateLicenceAsync(admin, "s", ["*"], expiresAt: Start.AddDays(2));
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        string firstToken = await server.LicenceTokenAsync(licence);
        (Release release, ModelKey released) = await server.ReleaseAndOpenAsync(firstToken, licence, "m", "latest", device);
        released.Dispose();
        Assert.Equal(Start.AddDays(2), release.LeaseExpiresAt);

        // Token lifetimes follow the server's clock: 15 minutes plus 30 s of skew.
        time.Advance(TimeSpan.FromMinutes(15) + TimeSpan.FromSeconds(30));
        (await server.ReleaseAndOpenAsync(firstToken, licence, "m", "latest", device)).Key.Dispose();
        time.Advance(TimeSpan.FromSeconds(1));
        (await server.ReleaseAsync(firstToken, "m", "latest", device)).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");

        // A token issued a minute before the licence expires is refused at release from the expiry on, and no new
        // token is issued.
        time.Now = Start.AddDays(2).AddMinutes(-1);
        string lastToken = await server.LicenceTokenAsync(licence);
        time.Advance(TimeSpan.FromMinutes(1));
        (await server.ReleaseAsync(lastToken, "m", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "licence-expired");
        (await server.PostAsync("/v1/token", new { grantType = "licence", licenceId = licence.Id, credential = licence.Credential })).AssertProblem(HttpStatusCode.Forbidden, "licence-expired");
    }

    [Fact]
    public async Task A_licence_for_one_model_does_not_release_another()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "model-a");
        await server.CreateModelAsync(admin, "model-b");
        (await server.CreateVersionAsync(admin, "model-a")).Key.Dispose();
        (await server.CreateVersionAsync(admin, "model-b")).Key.Dispose();
        Licence licence = await server.CreateLicenceAsync(admin, "customer-a", ["model-a"]);
        string token = await server.LicenceTokenAsync(licence);
        using HpkeKeyPair device = HpkeKeyPair.Generate();

        (await server.ReleaseAndOpenAsync(token, licence, "model-a", "latest", device)).Key.Dispose();
        (await server.ReleaseAsync(token, "model-b", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");
        (await server.ReleaseAsync(token, "model-b", "1", device)).AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");

        // A wildcard licence covers both.
        Licence all = await server.CreateLicenceAsync(admin, "customer-all", ["*"]);
        string allToken = await server.LicenceTokenAsync(all);
        (await server.ReleaseAndOpenAsync(allToken, all, "model-b", "latest", device)).Key.Dispose();

        // The refusal is audited with its problem code.
        Api audit = await server.GetAsync("/v1/admin/audit", admin);
        Assert.Contains(audit.Json.GetProperty("items").EnumerateArray(), r =>
            r.GetProperty("event").GetString() == "key.refused" && r.GetProperty("outcome").GetString() == "model-not-licensed" && r.GetProperty("modelId").GetString() == "model-b");
    }

    [Fact]
    public async Task Revoked_expired_and_not_yet_valid_licences_are_refused()
    {
        // Tokens are obtained while the licences are in standing (POST /v1/token refuses them afterwards,
        // LicenceTokenTests); the not-yet-valid licence is claimed by an external issuer's token, which needs no exchange.
        using var directory = new TempDirectory();
        using var idp = new ExternalIssuer("https://idp.example", directory.Sub("jwks.json"));
        var time = new ManualTime(Start);
        await using TestServer server = await TestServer.StartAsync(o =>
        {
            o.Time = time;
            o.TrustedIssuers = [new() { Issuer = idp.Issuer, JwksFile = idp.JwksFile }];
        });
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        using HpkeKeyPair device = HpkeKeyPair.Generate();

        Licence revoked = await server.CreateLicenceAsync(admin, "r", ["m"]);
        string revokedToken = await server.LicenceTokenAsync(revoked);
        (await server.ReleaseAndOpenAsync(revokedToken, revoked, "m", "latest", device)).Key.Dispose();
        Api revoke = await server.PostAsync($"/v1/admin/licences/{revoked.Id}/revoke", null, admin);
        Assert.Equal(HttpStatusCode.OK, revoke.Status);
        Assert.Equal(JsonValueKind.String, revoke.Json.GetProperty("revokedAt").ValueKind);
        Assert.False(revoke.Json.TryGetProperty("credential", out _));
        (await server.ReleaseAsync(revokedToken, "m", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "licence-revoked");

        Licence expired = await server.CreateLicenceAsync(admin, "e", ["m"], expiresAt: server.Now.AddMinutes(1));
        string expiredToken = await server.LicenceTokenAsync(expired);
        time.Advance(TimeSpan.FromMinutes(1));
        (await server.ReleaseAsync(expiredToken, "m", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "licence-expired");

        await server.CreateLicenceAsync(admin, "f@idp", ["m"], notBefore: server.Now.AddDays(1), issuer: idp.Issuer);
        (await server.ReleaseAsync(idp.Token("f@idp", "keys", server.Now), "m", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "licence-not-yet-valid");

        // Revocation is checked first: a revoked licence for another model is still "revoked".
        (await server.ReleaseAsync(revokedToken, "other", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "licence-revoked");
        (await server.PostAsync("/v1/admin/licences/lic_unknown/revoke", null, admin)).AssertProblem(HttpStatusCode.NotFound, "licence-not-found");
    }

    [Fact]
    public async Task The_device_limit_counts_distinct_devices()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        Licence licence = await server.CreateLicenceAsync(admin, "two-devices", ["m"], maxDevices: 2);
        string token = await server.LicenceTokenAsync(licence);
        using HpkeKeyPair first = HpkeKeyPair.Generate();
        using HpkeKeyPair second = HpkeKeyPair.Generate();
        using HpkeKeyPair third = HpkeKeyPair.Generate();

        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", first)).Key.Dispose();
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", second)).Key.Dispose();
        (await server.ReleaseAsync(token, "m", "latest", third)).AssertProblem(HttpStatusCode.Forbidden, "device-limit");
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", first)).Key.Dispose();
        (await server.ReleaseAndOpenAsync(token, licence, "m", "1", second)).Key.Dispose();

        Api devices = await server.GetAsync($"/v1/admin/licences/{licence.Id}/devices", admin);
        Assert.Equal(HttpStatusCode.OK, devices.Status);
        string[] thumbprints = devices.Json.GetProperty("items").EnumerateArray().Select(d => d.GetProperty("thumbprint").GetString()!).ToArray();
        Assert.Equal(
            new[] { first.PublicKey.Thumbprint, second.PublicKey.Thumbprint }.Order(),
            thumbprints.Order());
        (await server.GetAsync("/v1/admin/licences/lic_nope/devices", admin)).AssertProblem(HttpStatusCode.NotFound, "licence-not-found");
    }

    [Fact]
    public async Task Disabled_destroyed_missing_and_latest_versions()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (Release v1, ModelKey k1) = await server.CreateVersionAsync(admin, "m");
        (Release v2, ModelKey k2) = await server.CreateVersionAsync(admin, "m");
        (Release v3, ModelKey k3) = await server.CreateVersionAsync(admin, "m", version: "2026.1-rc");
        using (k1)
        using (k2)
        using (k3)
        {
            Assert.Equal(("1", "2", "2026.1-rc"), (v1.Version, v2.Version, v3.Version));
            Licence licence = await server.CreateLicenceAsync(admin, "s", ["m"]);
            string token = await server.LicenceTokenAsync(licence);
            using HpkeKeyPair device = HpkeKeyPair.Generate();

            // latest = the active version created last.
            (Release latest, ModelKey latestKey) = await server.ReleaseAndOpenAsync(token, licence, "m", "latest", device);
            using (latestKey)
            {
                Assert.Equal("2026.1-rc", latest.Version);
                Assert.Equal(TestServer.KeyBytes(k3), TestServer.KeyBytes(latestKey));
            }

            Api disable = await server.PostAsync("/v1/admin/models/m/versions/2026.1-rc/disable", null, admin);
            Assert.Equal("disabled", disable.Json.GetProperty("state").GetString());
            (await server.ReleaseAsync(token, "m", "2026.1-rc", device)).AssertProblem(HttpStatusCode.Forbidden, "version-disabled");
            (Release afterDisable, ModelKey k) = await server.ReleaseAndOpenAsync(token, licence, "m", "latest", device);
            k.Dispose();
            Assert.Equal("2", afterDisable.Version);

            Api enable = await server.PostAsync("/v1/admin/models/m/versions/2026.1-rc/enable", null, admin);
            Assert.Equal("active", enable.Json.GetProperty("state").GetString());
            (await server.ReleaseAndOpenAsync(token, licence, "m", "2026.1-rc", device)).Key.Dispose();

            Api destroy = await server.PostAsync("/v1/admin/models/m/versions/2/destroy", null, admin);
            Assert.Equal("destroyed", destroy.Json.GetProperty("state").GetString());
            (await server.ReleaseAsync(token, "m", "2", device)).AssertProblem(HttpStatusCode.Gone, "version-destroyed");
            (await server.PostAsync("/v1/admin/models/m/versions/2/enable", null, admin)).AssertProblem(HttpStatusCode.Gone, "version-destroyed");
            (await server.PostAsync("/v1/admin/models/m/versions/2/disable", null, admin)).AssertProblem(HttpStatusCode.Gone, "version-destroyed");

            // Version "1" is still there and still the same key.
            (Release one, ModelKey oneKey) = await server.ReleaseAndOpenAsync(token, licence, "m", "1", device);
            using (oneKey)
            {
                Assert.Equal(v1.KeyId, one.KeyId);
                Assert.Equal(TestServer.KeyBytes(k1), TestServer.KeyBytes(oneKey));
            }

            // With every version disabled or destroyed, there is no latest.
            await server.PostAsync("/v1/admin/models/m/versions/1/disable", null, admin);
            await server.PostAsync("/v1/admin/models/m/versions/2026.1-rc/disable", null, admin);
            (await server.ReleaseAsync(token, "m", "latest", device)).AssertProblem(HttpStatusCode.NotFound, "version-not-found");
            (await server.ReleaseAsync(token, "m", "9", device)).AssertProblem(HttpStatusCode.NotFound, "version-not-found");
            Licence all = await server.CreateLicenceAsync(admin, "all", ["*"]);
            (await server.ReleaseAsync(await server.LicenceTokenAsync(all), "nope", "latest", device)).AssertProblem(HttpStatusCode.NotFound, "model-not-found");

            // The listing shows the states and key ids, never keys.
            Api models = await server.GetAsync("/v1/admin/models", admin);
            JsonElement[] versions = models.Json.GetProperty("items")[0].GetProperty("versions").EnumerateArray().ToArray();
            Assert.Equal(["disabled", "destroyed", "disabled"], versions.Select(v => v.GetProperty("state").GetString()));
            Assert.Equal([v1.KeyId, v2.KeyId, v3.KeyId], versions.Select(v => v.GetProperty("keyId").GetString()));
        }
    }

    [Fact]
    public async Task Admin_conflicts_and_missing_resources()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.PostAsync("/v1/admin/models", new { modelId = "m" }, admin)).AssertProblem(HttpStatusCode.Conflict, "model-exists");
        (await server.CreateVersionAsync(admin, "m", version: "v1")).Key.Dispose();
        using HpkeKeyPair publisher = HpkeKeyPair.Generate();
        string publicKey = TestServer.Base64Url(publisher.PublicKey.Encoded.Span);
        (await server.PostAsync("/v1/admin/models/m/versions", new { version = "v1", publisherPublicKey = publicKey, nonce = ServerClient.Nonce(), protocol = 2 }, admin)).AssertProblem(HttpStatusCode.Conflict, "version-exists");
        (await server.PostAsync("/v1/admin/models/none/versions/1/disable", null, admin)).AssertProblem(HttpStatusCode.NotFound, "model-not-found");
        (await server.PostAsync("/v1/admin/models/m/versions/9/disable", null, admin)).AssertProblem(HttpStatusCode.NotFound, "version-not-found");

        // Without a version the next integer follows the largest integer version.
        (Release next, ModelKey key) = await server.CreateVersionAsync(admin, "m");
        key.Dispose();
        Assert.Equal("1", next.Version);
        (await server.CreateVersionAsync(admin, "m", version: "41")).Key.Dispose();
        (next, key) = await server.CreateVersionAsync(admin, "m");
        key.Dispose();
        Assert.Equal("42", next.Version);

        // Licences list without credentials.
        Licence licence = await server.CreateLicenceAsync(admin, "s", ["m"]);
        Api list = await server.GetAsync("/v1/admin/licences", admin);
        JsonElement item = list.Json.GetProperty("items").EnumerateArray().Single();
        Assert.Equal(licence.Id, item.GetProperty("licenceId").GetString());
        Assert.DoesNotContain(licence.Credential, list.Text, StringComparison.Ordinal);
        Assert.False(item.TryGetProperty("credential", out _));
        Assert.StartsWith("lic_", licence.Id, StringComparison.Ordinal);
    }
}
