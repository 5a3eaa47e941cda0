using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using ModelSeal.Hpke;
using ModelSeal.Server.Attestation;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Domain;

namespace ModelSeal.Server.Tests.Attestation;

/// <summary>
/// Attestation as a release policy through the real server (docs/protocol.md section 2.6), with chains of the TEST-ONLY
/// CAs (<see cref="TestAttestationCa"/>, <see cref="AppleTestCa"/>): the first release of a device key carries evidence
/// over a server-issued challenge; later ones need none; every refusal is one signed <c>403 attestation-rejected</c>
/// whose reason is in the audit record, and registers nothing.
/// </summary>
public sealed class AttestationReleaseTests : IDisposable
{
    private const string Policy = "store-apps";
    private static readonly string[] Models = ["m"];
    private static readonly DateTimeOffset Start = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly TempDirectory _directory = new();
    private readonly ManualTime _time = new(Start);
    private readonly TestAttestationCa _ca = new(Start);
    private readonly TestAttestationCa _expiredCa = new(Start.AddDays(-60)); // its intermediate ended 30 days ago
    private readonly TestAttestationCa _unpinnedCa = new(Start);
    private readonly AppleTestCa _apple = new(Start);

    public void Dispose()
    {
        _ca.Dispose();
        _expiredCa.Dispose();
        _unpinnedCa.Dispose();
        _apple.Dispose();
        _directory.Dispose();
    }

    private string StatusList => _directory.Sub("status.json");

    /// <summary>A server pinning the test CAs' roots, with the policy <c>store-apps</c> (Android and Apple, production only).</summary>
    private async Task<TestServer> StartAsync(Action<ServerOptions>? configure = null, string? dataDirectory = null)
    {
        string roots = _directory.Sub("android-roots.pem");
        await File.WriteAllTextAsync(roots, _ca.RootPem() + "\n" + _expiredCa.RootPem() + "\n", TestContext.Current.CancellationToken);
        string appleRoot = _directory.Sub("apple-root.pem");
        await File.WriteAllTextAsync(appleRoot, _apple.Root.ExportCertificatePem(), TestContext.Current.CancellationToken);
        if (!File.Exists(StatusList))
        {
            await File.WriteAllTextAsync(StatusList, """{"entries": {}}""", TestContext.Current.CancellationToken);
        }

        return await TestServer.StartAsync(o =>
        {
            o.Time = _time;
            o.Attestation.ReverifyInterval = TimeSpan.Zero;
            o.Attestation.Android.RootsFile = roots;
            o.Attestation.Android.StatusListFile = StatusList;
            o.Attestation.Apple.RootFile = appleRoot;
            o.Attestation.Policies[Policy] = new AttestationPolicyOptions
            {
                Android = new AndroidPolicyOptions { PackageNames = [LeafDescription.Package], SigningCertificateDigests = [LeafDescription.Digest] },
                Apple = new ApplePolicyOptions { AppIds = [AppleTestCa.AppId] },
            };
            configure?.Invoke(o);
        },
        dataDirectory);
    }

    /// <summary>A model <c>m</c> and a licence for it under <paramref name="policy"/>; the admin token and the licence's token.</summary>
    private static async Task<(string Admin, Licence Licence, string Token)> LicenceAsync(TestServer server, string? policy = Policy, string subject = "app", int maxDevices = 5)
    {
        string admin = await server.AdminTokenAsync();
        if (!(await server.GetAsync("/v1/admin/models", admin)).Text.Contains("\"m\"", StringComparison.Ordinal))
        {
            (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        }

        Api created = await server.PostAsync("/v1/admin/licences", new { subject, models = Models, maxDevices, attestationPolicy = policy }, admin);
        created.AssertStatus(HttpStatusCode.Created);
        Assert.Equal(policy, created.Json.GetProperty("attestationPolicy").GetString());
        var licence = new Licence(created.Json.GetProperty("licenceId").GetString()!, created.Json.GetProperty("credential").GetString()!, subject);
        return (admin, licence, await server.LicenceTokenAsync(licence));
    }

    private static async Task<byte[]> ChallengeAsync(TestServer server, string token)
    {
        Api answer = await server.PostAsync("/v1/attestation/challenges", null, token);
        answer.AssertStatus(HttpStatusCode.Created);
        return System.Buffers.Text.Base64Url.DecodeFromChars(answer.Json.GetProperty("challenge").GetString());
    }

    private static Task<Api> ReleaseAsync(TestServer server, string token, HpkeKeyPair device, object? attestation) =>
        server.PostAsync("/v1/keys/release", new { modelId = "m", version = "latest", devicePublicKey = TestServer.Base64Url(device.PublicKey.Encoded.Span), nonce = ServerClient.Nonce(), protocol = 2, attestation }, token);

    private static object Android(byte[] challenge, IEnumerable<byte[]> chain) =>
        new { format = "android-key", challenge = TestServer.Base64Url(challenge), certificates = chain.Select(c => TestServer.Base64Url(c)).ToArray() };

    private static ECDiffieHellman Ecdh(HpkeKeyPair device)
    {
        byte[] point = device.PublicKey.Encoded.ToArray();
        return ECDiffieHellman.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = new ECPoint { X = point[1..33], Y = point[33..] } });
    }

    private List<byte[]> Chain(HpkeKeyPair device, LeafDescription leaf, TestAttestationCa? ca = null)
    {
        using ECDiffieHellman key = Ecdh(device);
        return (ca ?? _ca).Chain(key, leaf);
    }

    /// <summary>Asserts a signed 403 attestation-rejected and that the last refusal's audit record names <paramref name="reason"/>.</summary>
    private static void AssertRejected(TestServer server, Api answer, string reason)
    {
        answer.AssertProblem(HttpStatusCode.Forbidden, "attestation-rejected");
        Assert.True(answer.Json.TryGetProperty("signature", out _), "an attestation refusal is signed like every release refusal");
        Assert.Equal(reason, LastRefusalReason(server));
    }

    private static string? LastRefusalReason(TestServer server)
    {
        string? attributes = server.Database.Scalar<string>("SELECT attributes FROM audit WHERE event = 'key.refused' AND outcome = 'attestation-rejected' ORDER BY id DESC LIMIT 1");
        return attributes is null ? null : JsonDocument.Parse(attributes).RootElement.GetProperty("attestation").GetString();
    }

    private static void AssertNothingRegistered(TestServer server)
    {
        Assert.Equal(0, server.Database.Count("SELECT COUNT(*) FROM devices"));
        Assert.Equal(0, server.Database.Count("SELECT COUNT(*) FROM user_devices"));
        Assert.Equal(0, server.Database.Count("SELECT COUNT(*) FROM device_attestations"));
    }

    [Fact]
    public async Task Under_a_licence_policy_the_first_release_attests_later_ones_need_no_evidence_and_a_new_device_without_evidence_is_refused()
    {
        await using TestServer server = await StartAsync();
        (string admin, Licence licence, string token) = await LicenceAsync(server);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        byte[] challenge = await ChallengeAsync(server, token);
        (await ReleaseAsync(server, token, device, Android(challenge, Chain(device, new LeafDescription { Challenge = challenge })))).AssertStatus(HttpStatusCode.OK);
        Assert.Equal(1, server.Database.Count("SELECT COUNT(*) FROM device_attestations WHERE format = 'android-key' AND policy = 'store-apps'"));
        Assert.Equal(0, server.Database.Count("SELECT COUNT(*) FROM attestation_challenges"));

        // Again without evidence, and with the old chain resent (its challenge used long ago): ignored, released.
        (await ReleaseAsync(server, token, device, null)).AssertStatus(HttpStatusCode.OK);
        (await ReleaseAsync(server, token, device, Android(challenge, Chain(device, new LeafDescription { Challenge = challenge })))).AssertStatus(HttpStatusCode.OK);

        using HpkeKeyPair other = HpkeKeyPair.Generate();
        AssertRejected(server, await ReleaseAsync(server, token, other, null), "evidence-missing");
        Assert.Equal(1, (await server.GetAsync($"/v1/admin/licences/{licence.Id}/devices", admin)).Json.GetProperty("items").GetArrayLength());

        // A licence without a policy is not affected.
        (_, _, string plain) = await LicenceAsync(server, policy: null, subject: "plain");
        (await ReleaseAsync(server, plain, other, null)).AssertStatus(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Under_an_entitlement_rule_policy_the_same_holds()
    {
        using var idp = new ExternalIssuer("https://idp.example", _directory.Sub("idp.json"));
        await using TestServer server = await StartAsync(o =>
        {
            o.TrustedIssuers = [new() { Issuer = idp.Issuer, JwksFile = idp.JwksFile }];
            o.Entitlements.Rules = [new() { Name = "attested", Issuer = idp.Issuer, Models = ["m"], MaxDevices = 3, AttestationPolicy = Policy }];
        });
        (await server.CreateVersionAsync(await server.AdminTokenAsync(), "m")).Key.Dispose();
        string token = idp.Token("alice", "keys", server.Now);
        using HpkeKeyPair device = HpkeKeyPair.Generate();

        AssertRejected(server, await ReleaseAsync(server, token, device, null), "evidence-missing");
        AssertNothingRegistered(server);
        byte[] challenge = await ChallengeAsync(server, token);
        (await ReleaseAsync(server, token, device, Android(challenge, Chain(device, new LeafDescription { Challenge = challenge })))).AssertStatus(HttpStatusCode.OK);
        (await ReleaseAsync(server, token, device, null)).AssertStatus(HttpStatusCode.OK);
        Assert.Equal(1, server.Database.Count("SELECT COUNT(*) FROM user_devices"));

        using HpkeKeyPair other = HpkeKeyPair.Generate();
        AssertRejected(server, await ReleaseAsync(server, token, other, null), "evidence-missing");
    }

    [Fact]
    public async Task A_rule_naming_an_unknown_policy_refuses_the_start()
    {
        using var idp = new ExternalIssuer("https://idp.example", _directory.Sub("idp.json"));
        ServerConfigurationException refused = await Assert.ThrowsAsync<ServerConfigurationException>(() => StartAsync(o =>
        {
            o.TrustedIssuers = [new() { Issuer = idp.Issuer, JwksFile = idp.JwksFile }];
            o.Entitlements.Rules = [new() { Name = "attested", Issuer = idp.Issuer, Models = ["m"], AttestationPolicy = "nope" }];
        }));
        Assert.Contains("Entitlements:Rules:0:AttestationPolicy", refused.Message, StringComparison.Ordinal);
        Assert.Contains("'store-apps'", refused.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string, string> Mutations() => new()
    {
        { "flip-leaf", "signature-invalid" },
        { "flip-intermediate", "signature-invalid" },
        { "unpinned-root", "untrusted-root" },
        { "impostor-root", "untrusted-root" },
        { "expired", "certificate-expired" },
        { "revoked", "certificate-revoked" },
        { "package", "package-not-allowed" },
        { "digest", "signing-certificate-not-allowed" },
        { "wrong-challenge", "challenge-mismatch" },
        { "unissued-challenge", "challenge-unknown" },
        { "software", "security-level" },
        { "imported", "key-imported" },
        { "sign", "purpose" },
        { "other-key", "key-mismatch" },
        { "none", "evidence-missing" },
    };

    [Theory]
    [MemberData(nameof(Mutations))]
    public async Task Each_mutation_is_refused_with_its_reason_and_registers_nothing(string mutation, string reason)
    {
        if (mutation == "revoked")
        {
            await File.WriteAllTextAsync(StatusList, """{"entries": {"1": {"status": "REVOKED", "reason": "KEY_COMPROMISE"}}}""", TestContext.Current.CancellationToken);
        }

        await using TestServer server = await StartAsync();
        (_, _, string token) = await LicenceAsync(server);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        byte[] challenge = await ChallengeAsync(server, token);
        var leaf = new LeafDescription { Challenge = challenge };
        List<byte[]> chain = Chain(device, leaf);
        byte[] sent = challenge;
        switch (mutation)
        {
            case "flip-leaf":
                chain[0][^1] ^= 0x01;
                break;
            case "flip-intermediate":
                chain[1][^1] ^= 0x01;
                break;
            case "unpinned-root":
                chain = Chain(device, leaf, _unpinnedCa);
                break;
            case "impostor-root":
                using (var impostorKey = ECDsa.Create(ECCurve.NamedCurves.nistP256))
                using (var impostor = new System.Security.Cryptography.X509Certificates.CertificateRequest(_ca.Root.SubjectName, impostorKey, HashAlgorithmName.SHA256).CreateSelfSigned(Start.AddYears(-1), Start.AddYears(1)))
                {
                    chain[^1] = impostor.RawData;
                }

                break;
            case "expired":
                chain = Chain(device, leaf, _expiredCa);
                break;
            case "package":
                chain = Chain(device, leaf with { PackageName = "com.example.repackaged" });
                break;
            case "digest":
                chain = Chain(device, leaf with { SigningDigest = Convert.ToHexStringLower(SHA256.HashData("another signer"u8)) });
                break;
            case "wrong-challenge":
                chain = Chain(device, leaf with { Challenge = await ChallengeAsync(server, token) });
                break;
            case "unissued-challenge":
                sent = RandomNumberGenerator.GetBytes(32);
                chain = Chain(device, leaf with { Challenge = sent });
                break;
            case "software":
                chain = Chain(device, leaf with { Level = LeafDescription.Software });
                break;
            case "imported":
                chain = Chain(device, leaf with { Origin = LeafDescription.OriginImported });
                break;
            case "sign":
                chain = Chain(device, leaf with { Purposes = [LeafDescription.PurposeSign] });
                break;
            case "other-key":
                using (HpkeKeyPair attested = HpkeKeyPair.Generate())
                {
                    chain = Chain(attested, leaf);
                }

                break;
        }

        Api answer = await ReleaseAsync(server, token, device, mutation == "none" ? null : Android(sent, chain));
        AssertRejected(server, answer, reason);
        AssertNothingRegistered(server);
    }

    [Fact]
    public async Task A_challenge_is_single_use_short_lived_and_only_for_the_caller_that_asked()
    {
        await using TestServer server = await StartAsync();
        (_, _, string token) = await LicenceAsync(server);
        (_, _, string otherToken) = await LicenceAsync(server, subject: "other-app");
        using HpkeKeyPair first = HpkeKeyPair.Generate();
        using HpkeKeyPair second = HpkeKeyPair.Generate();

        // Issued to another caller.
        byte[] theirs = await ChallengeAsync(server, otherToken);
        AssertRejected(server, await ReleaseAsync(server, token, first, Android(theirs, Chain(first, new LeafDescription { Challenge = theirs }))), "challenge-unknown");
        AssertNothingRegistered(server);

        // Expired: the lifetime is 5 minutes by default.
        byte[] stale = await ChallengeAsync(server, token);
        _time.Advance(TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(1));
        AssertRejected(server, await ReleaseAsync(server, token, first, Android(stale, Chain(first, new LeafDescription { Challenge = stale }))), "challenge-unknown");
        AssertNothingRegistered(server);

        // Used once, then replayed (by another device key of the same caller).
        byte[] challenge = await ChallengeAsync(server, token);
        (await ReleaseAsync(server, token, first, Android(challenge, Chain(first, new LeafDescription { Challenge = challenge })))).AssertStatus(HttpStatusCode.OK);
        AssertRejected(server, await ReleaseAsync(server, token, second, Android(challenge, Chain(second, new LeafDescription { Challenge = challenge }))), "challenge-unknown");
        Assert.Equal(1, server.Database.Count("SELECT COUNT(*) FROM device_attestations"));

        // Expired challenges are purged when new ones are issued.
        _time.Advance(TimeSpan.FromMinutes(6));
        await ChallengeAsync(server, token);
        Assert.Equal(1, server.Database.Count("SELECT COUNT(*) FROM attestation_challenges"));
    }

    [Fact]
    public async Task The_challenge_endpoint_answers_an_expiry_and_needs_a_keys_token()
    {
        await using TestServer server = await StartAsync();
        (string admin, _, string token) = await LicenceAsync(server);
        Api answer = await server.PostAsync("/v1/attestation/challenges", null, token);
        answer.AssertStatus(HttpStatusCode.Created);
        Assert.Equal(32, System.Buffers.Text.Base64Url.DecodeFromChars(answer.Json.GetProperty("challenge").GetString()).Length);
        Assert.True(ModelSeal.Protocol.Rfc3339.TryParse(answer.Json.GetProperty("expiresAt").GetString(), out DateTimeOffset expiresAt));
        Assert.Equal(server.Now.AddMinutes(5).ToUnixTimeSeconds(), expiresAt.ToUnixTimeSeconds());
        (await server.PostAsync("/v1/attestation/challenges", null)).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        (await server.PostAsync("/v1/attestation/challenges", null, admin)).AssertProblem(HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task Malformed_evidence_is_400_before_the_rules()
    {
        await using TestServer server = await StartAsync();
        (_, _, string token) = await LicenceAsync(server);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        string challenge = TestServer.Base64Url(RandomNumberGenerator.GetBytes(32));
        string cert = TestServer.Base64Url(new byte[100]);
        (await ReleaseAsync(server, token, device, new { format = "tpm", challenge })).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        (await ReleaseAsync(server, token, device, new { format = "android-key", challenge = "!!", certificates = new[] { cert, cert } })).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        Api tooMany = await ReleaseAsync(server, token, device, new { format = "android-key", challenge, certificates = Enumerable.Repeat(cert, 11).ToArray() });
        tooMany.AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        Assert.True(tooMany.Json.GetProperty("errors").TryGetProperty("attestation.certificates", out _));
        string large = TestServer.Base64Url(new byte[(16 * 1024) + 1]);
        (await ReleaseAsync(server, token, device, new { format = "android-key", challenge, certificates = new[] { large, cert } })).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        Api apple = await ReleaseAsync(server, token, device, new { format = "apple-appattest", challenge });
        Assert.True(apple.Json.GetProperty("errors").TryGetProperty("attestation.attestationObject", out _));
        Assert.Equal(0, server.Database.Count("SELECT COUNT(*) FROM audit WHERE event = 'key.refused'"));
    }

    [Fact]
    public async Task Licence_attestation_policy_is_set_changed_and_removed_audited_and_an_unknown_name_is_400()
    {
        await using TestServer server = await StartAsync(o => o.Attestation.Policies["other"] = new AttestationPolicyOptions { Apple = new ApplePolicyOptions { AppIds = [AppleTestCa.AppId] } });
        (string admin, Licence licence, _) = await LicenceAsync(server);
        string licenceId = licence.Id;
        (await server.PostAsync("/v1/admin/licences", new { subject = "x", models = Models, maxDevices = 1, attestationPolicy = "nope" }, admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        (await Patch(server, licenceId, new { attestationPolicy = "nope" }, admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        Api changed = await Patch(server, licenceId, new { attestationPolicy = "other" }, admin);
        changed.AssertStatus(HttpStatusCode.OK);
        Assert.Equal("other", changed.Json.GetProperty("attestationPolicy").GetString());
        Api removed = await Patch(server, licenceId, new { attestationPolicy = "" }, admin);
        removed.AssertStatus(HttpStatusCode.OK);
        Assert.Equal(JsonValueKind.Null, removed.Json.GetProperty("attestationPolicy").ValueKind);
        string? attributes = server.Database.Scalar<string>("SELECT attributes FROM audit WHERE event = 'licence.changed' ORDER BY id DESC LIMIT 1");
        Assert.Contains("\"attestationPolicy.was\":\"other\"", attributes, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_policy_with_only_an_apple_section_refuses_android_evidence()
    {
        await using TestServer server = await StartAsync(o => o.Attestation.Policies["apple-only"] = new AttestationPolicyOptions { Apple = new ApplePolicyOptions { AppIds = [AppleTestCa.AppId] } });
        (_, _, string token) = await LicenceAsync(server, "apple-only");
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        byte[] challenge = await ChallengeAsync(server, token);
        AssertRejected(server, await ReleaseAsync(server, token, device, Android(challenge, Chain(device, new LeafDescription { Challenge = challenge }))), "format-not-allowed");
        AssertNothingRegistered(server);
    }

    private object AppleEvidence(ECDsa appKey, HpkeKeyPair device, byte[] challenge, bool development = false, uint counter = 1) => new
    {
        format = "apple-appattest",
        challenge = TestServer.Base64Url(challenge),
        keyId = TestServer.Base64Url(SHA256.HashData(AppleTestCa.PointOf(appKey))),
        attestationObject = TestServer.Base64Url(_apple.Attestation(appKey, SHA256.HashData(challenge), new AppleTestEvidence { Development = development })),
        assertion = TestServer.Base64Url(AppleTestCa.Assertion(appKey, AppleAppAttestBinding.DeviceKeyClientDataHash(challenge, device.PublicKey.Encoded.Span), counter)),
    };

    private static object AppleAssertion(ECDsa appKey, HpkeKeyPair device, byte[] challenge, uint counter) => new
    {
        format = "apple-appattest-assertion",
        challenge = TestServer.Base64Url(challenge),
        assertion = TestServer.Base64Url(AppleTestCa.Assertion(appKey, AppleAppAttestBinding.DeviceKeyClientDataHash(challenge, device.PublicKey.Encoded.Span), counter)),
    };

    [Fact]
    public async Task App_attest_registers_a_production_key_refuses_a_development_one_and_reasserts_with_an_increasing_counter()
    {
        await using TestServer server = await StartAsync(o => o.Attestation.Policies[Policy].Apple!.ReassertAfter = TimeSpan.FromDays(7));
        (_, Licence licence, string token) = await LicenceAsync(server);

        // A development key under a production-only policy.
        using (var devKey = ECDsa.Create(ECCurve.NamedCurves.nistP256))
        using (HpkeKeyPair devDevice = HpkeKeyPair.Generate())
        {
            AssertRejected(server, await ReleaseAsync(server, token, devDevice, AppleEvidence(devKey, devDevice, await ChallengeAsync(server, token), development: true)), "environment-not-allowed");
            AssertNothingRegistered(server);
        }

        using var appKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (await ReleaseAsync(server, token, device, AppleEvidence(appKey, device, await ChallengeAsync(server, token)))).AssertStatus(HttpStatusCode.OK);
        (await ReleaseAsync(server, token, device, null)).AssertStatus(HttpStatusCode.OK);

        // A fresh assertion with a higher counter is stored; the same counter again is a replay.
        (await ReleaseAsync(server, token, device, AppleAssertion(appKey, device, await ChallengeAsync(server, token), 5))).AssertStatus(HttpStatusCode.OK);
        Assert.Equal(5, server.Database.Count("SELECT counter FROM device_attestations"));
        AssertRejected(server, await ReleaseAsync(server, token, device, AppleAssertion(appKey, device, await ChallengeAsync(server, token), 5)), "counter-not-increasing");

        // ReassertAfter: a week after the last assertion a release must carry a new one (over a new challenge).
        _time.Advance(TimeSpan.FromDays(8));
        token = await server.LicenceTokenAsync(licence);
        AssertRejected(server, await ReleaseAsync(server, token, device, null), "reassertion-required");
        (await ReleaseAsync(server, token, device, AppleAssertion(appKey, device, await ChallengeAsync(server, token), 6))).AssertStatus(HttpStatusCode.OK);
        (await ReleaseAsync(server, token, device, null)).AssertStatus(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Reverification_rejects_a_device_whose_leaf_was_revoked_and_its_next_release_is_refused_with_that_reason()
    {
        await using TestServer server = await StartAsync();
        (string admin, _, string token) = await LicenceAsync(server);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        byte[] challenge = await ChallengeAsync(server, token);
        (await ReleaseAsync(server, token, device, Android(challenge, Chain(device, new LeafDescription { Challenge = challenge })))).AssertStatus(HttpStatusCode.OK);

        Api nothing = await server.PostAsync("/v1/admin/attestations/reverify", null, admin);
        nothing.AssertStatus(HttpStatusCode.OK);
        Assert.Equal(1, nothing.Json.GetProperty("checked").GetInt32());
        Assert.Equal(0, nothing.Json.GetProperty("rejected").GetArrayLength());
        (await server.PostAsync("/v1/admin/attestations/reverify", null, token)).AssertProblem(HttpStatusCode.Forbidden, "forbidden");

        // Google revokes the leaf's serial; the operator fetches the status list again and re-verifies.
        await File.WriteAllTextAsync(StatusList, "{\"entries\": {\"" + TestAttestationCa.LeafSerial + "\": {\"status\": \"REVOKED\", \"reason\": \"KEY_COMPROMISE\"}}}", TestContext.Current.CancellationToken);
        Api answer = await server.PostAsync("/v1/admin/attestations/reverify", null, admin);
        answer.AssertStatus(HttpStatusCode.OK);
        JsonElement rejected = Assert.Single(answer.Json.GetProperty("rejected").EnumerateArray());
        Assert.Equal(HpkePublicKey.ThumbprintOf(device.PublicKey.Encoded.Span), rejected.GetProperty("thumbprint").GetString());
        Assert.Equal("android-key", rejected.GetProperty("format").GetString());
        Assert.Equal("certificate-revoked", rejected.GetProperty("reason").GetString());
        Assert.Equal(1, server.Database.Count("SELECT COUNT(*) FROM audit WHERE event = 'device.attestation-rejected' AND outcome = 'certificate-revoked'"));
        Assert.Equal(2, server.Database.Count("SELECT COUNT(*) FROM audit WHERE event = 'attestations.reverified'"));

        // Rejected once: the next pass does not list it again; its next release is refused with the stored reason.
        Assert.Equal(0, (await server.PostAsync("/v1/admin/attestations/reverify", null, admin)).Json.GetProperty("rejected").GetArrayLength());
        AssertRejected(server, await ReleaseAsync(server, token, device, null), "certificate-revoked");
    }

    [Fact]
    public async Task An_unreadable_status_list_at_reverification_is_503_and_keeps_the_list_in_force()
    {
        await using TestServer server = await StartAsync();
        string admin = await server.AdminTokenAsync();
        await File.WriteAllTextAsync(StatusList, "not json", TestContext.Current.CancellationToken);
        Api answer = await server.PostAsync("/v1/admin/attestations/reverify", null, admin);
        answer.AssertProblem(HttpStatusCode.ServiceUnavailable, "not-ready");
        Assert.Contains("StatusListFile", answer.Json.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_schema_7_database_is_upgraded_its_licences_without_a_policy()
    {
        string data = _directory.Sub("data");
        TestDatabase database;
        string licenceId;
        await using (TestServer first = await StartAsync(configure: null, data))
        {
            (_, Licence licence, _) = await LicenceAsync(first, policy: null);
            licenceId = licence.Id;
            database = first.Database;
        }

        // Back to schema 7: no attestation_policy column, no attestation tables.
        database.Execute("ALTER TABLE licences DROP COLUMN attestation_policy; DROP TABLE device_attestations; DROP TABLE attestation_challenges; " + (database.IsPostgres ? "UPDATE schema_info SET version = 7;" : "PRAGMA user_version = 7;"));
        await using TestServer server = await StartAsync(configure: null, data);
        Assert.Equal(8L, server.Database.Count(server.Database.IsPostgres ? "SELECT max(version) FROM schema_info" : "PRAGMA user_version"));
        string admin = await server.AdminTokenAsync();
        JsonElement listed = (await server.GetAsync("/v1/admin/licences", admin)).Json.GetProperty("items").EnumerateArray().Single(l => l.GetProperty("licenceId").GetString() == licenceId);
        Assert.Equal(JsonValueKind.Null, listed.GetProperty("attestationPolicy").ValueKind);
        (await Patch(server, licenceId, new { attestationPolicy = Policy }, admin)).AssertStatus(HttpStatusCode.OK);
        Assert.Equal(0, server.Database.Count("SELECT COUNT(*) FROM device_attestations") + server.Database.Count("SELECT COUNT(*) FROM attestation_challenges"));
    }

    // Its own backends: two instances on one PostgreSQL database with shared key files (not the second CI pass's HSM keys).
    [Fact]
    [Trait("Backends", "own")]
    public async Task Two_instances_on_one_postgresql_database_share_the_challenges()
    {
        var postgres = new DatabaseOptions { Provider = DatabaseOptions.Postgres, ConnectionString = PostgresSchema.ConnectionString(_directory.Sub("a"), create: true) };
        await using TestServer a = await StartAsync(o => o.Database = postgres, _directory.Sub("a"));
        ServerProcess.ShareSecrets(_directory.Sub("a"), _directory.Sub("b"));
        await using TestServer b = await StartAsync(o => o.Database = postgres, _directory.Sub("b"));
        (_, _, string token) = await LicenceAsync(a);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        using HpkeKeyPair second = HpkeKeyPair.Generate();

        // Issued by one instance, used through the other; then used up for both.
        byte[] challenge = await ChallengeAsync(a, token);
        (await ReleaseAsync(b, token, device, Android(challenge, Chain(device, new LeafDescription { Challenge = challenge })))).AssertStatus(HttpStatusCode.OK);
        AssertRejected(a, await ReleaseAsync(a, token, second, Android(challenge, Chain(second, new LeafDescription { Challenge = challenge }))), "challenge-unknown");

        // The accepted attestation is the database's: the other instance releases to the device without evidence.
        (await ReleaseAsync(a, token, device, null)).AssertStatus(HttpStatusCode.OK);
    }

    public static TheoryData<string, string> BadConfigurations() => new()
    {
        { "lifetime", "Attestation:ChallengeLifetime" },
        { "interval", "Attestation:ReverifyInterval" },
        { "roots", "Attestation:Android:RootsFile" },
        { "name", "a policy name is 1 to 64" },
        { "empty", "has neither an Android nor an Apple section" },
        { "level", "MinimumSecurityLevel" },
        { "packages", "Android:PackageNames is empty" },
        { "digest", "SigningCertificateDigests" },
        { "apps", "Apple:AppIds is empty" },
        { "reassert", "Apple:ReassertAfter" },
    };

    [Theory]
    [MemberData(nameof(BadConfigurations))]
    public void A_bad_attestation_configuration_is_refused_naming_the_key(string fault, string expected)
    {
        var options = new ServerOptions { DataDirectory = _directory.Sub("data") };
        var android = new AndroidPolicyOptions { PackageNames = [LeafDescription.Package], SigningCertificateDigests = [LeafDescription.Digest] };
        var policy = new AttestationPolicyOptions { Android = android, Apple = new ApplePolicyOptions { AppIds = [AppleTestCa.AppId] } };
        options.Attestation.Policies["p"] = policy;
        switch (fault)
        {
            case "lifetime": options.Attestation.ChallengeLifetime = TimeSpan.FromSeconds(10); break;
            case "interval": options.Attestation.ReverifyInterval = TimeSpan.FromSeconds(10); break;
            case "roots": options.Attestation.Android.RootsFile = _directory.Sub("missing.pem"); break;
            case "name": options.Attestation.Policies["bad name"] = policy; break;
            case "empty": options.Attestation.Policies["p"] = new AttestationPolicyOptions(); break;
            case "level": android.MinimumSecurityLevel = "Software"; break;
            case "packages": android.PackageNames = []; break;
            case "digest": android.SigningCertificateDigests = ["abc"]; break;
            case "apps": policy.Apple!.AppIds = []; break;
            case "reassert": policy.Apple!.ReassertAfter = TimeSpan.Zero; break;
        }

        ServerConfigurationException refused = Assert.Throws<ServerConfigurationException>(() => ServerOptionsValidator.Validate(options));
        Assert.Contains(expected, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_built_in_roots_load_and_a_policy_becomes_the_verifiers_policies()
    {
        var options = new AttestationOptions();
        options.Policies["p"] = new AttestationPolicyOptions { Android = new AndroidPolicyOptions { MinimumSecurityLevel = "StrongBox", PackageNames = ["a"], SigningCertificateDigests = [LeafDescription.Digest.ToUpperInvariant()] } };
        AttestationTrust trust = AttestationTrust.Load(options);
        Assert.Contains("Apple App Attestation Root CA", trust.AppleRoot.Subject, StringComparison.Ordinal);
        AttestationPolicy policy = trust.Policies["p"];
        Assert.Null(policy.Apple);
        Assert.Equal(AndroidSecurityLevel.StrongBox, policy.Android!.MinimumSecurityLevel);
        Assert.Contains(LeafDescription.Digest, policy.Android.SigningCertificateDigests);

        // Google's roots are pinned, a test CA's is not.
        using var google = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(RepoPaths.Root, "tests", "attestation", "android", "google_root_rsa_2022_f1c172a699eaf51d.pem")));
        Assert.True(trust.Android.IsPinnedRoot(google));
        Assert.False(trust.Android.IsPinnedRoot(_ca.Root));
    }

    [Fact]
    public async Task Evidence_of_a_device_over_the_limit_uses_up_its_challenge_and_stores_nothing()
    {
        await using TestServer server = await StartAsync();
        (_, _, string token) = await LicenceAsync(server, maxDevices: 1);
        using HpkeKeyPair first = HpkeKeyPair.Generate();
        using HpkeKeyPair second = HpkeKeyPair.Generate();
        byte[] challenge = await ChallengeAsync(server, token);
        (await ReleaseAsync(server, token, first, Android(challenge, Chain(first, new LeafDescription { Challenge = challenge })))).AssertStatus(HttpStatusCode.OK);
        challenge = await ChallengeAsync(server, token);
        (await ReleaseAsync(server, token, second, Android(challenge, Chain(second, new LeafDescription { Challenge = challenge })))).AssertProblem(HttpStatusCode.Forbidden, "device-limit");
        Assert.Equal(1, server.Database.Count("SELECT COUNT(*) FROM device_attestations"));
        Assert.Equal(0, server.Database.Count("SELECT COUNT(*) FROM attestation_challenges"));
    }

    [Fact]
    public async Task Reverification_runs_every_interval_on_the_server_clock()
    {
        await using TestServer server = await StartAsync(o => o.Attestation.ReverifyInterval = TimeSpan.FromHours(1));
        (_, _, string token) = await LicenceAsync(server);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        byte[] challenge = await ChallengeAsync(server, token);
        (await ReleaseAsync(server, token, device, Android(challenge, Chain(device, new LeafDescription { Challenge = challenge })))).AssertStatus(HttpStatusCode.OK);
        await File.WriteAllTextAsync(StatusList, "{\"entries\": {\"" + TestAttestationCa.IntermediateSerial + "\": {\"status\": \"SUSPENDED\"}}}", TestContext.Current.CancellationToken);

        DeviceAttestations attestations = server.App.Services.GetRequiredService<DeviceAttestations>();
        Task<ReverifyResult?> pass = attestations.NextPassAsync();
        _time.Advance(TimeSpan.FromHours(1));
        ReverifyResult? result = await pass;
        Assert.NotNull(result);
        Assert.Equal("certificate-revoked", Assert.Single(result.Rejected).Reason);
        Assert.Equal("certificate-revoked", server.Database.Scalar<string>("SELECT rejected_reason FROM device_attestations"));
        Assert.Equal(1, server.Database.Count("SELECT COUNT(*) FROM audit WHERE event = 'attestations.reverified' AND subject = 'operator'"));
    }

    [Fact]
    public void A_rule_file_naming_an_unknown_policy_is_not_applied()
    {
        string file = _directory.Sub("rules.json");
        const string Rules = "{\"Rules\": [{\"Name\": \"r\", \"Issuer\": \"https://idp.example\", \"Models\": [\"m\"], \"AttestationPolicy\": \"POLICY\"}]}";
        File.WriteAllText(file, Rules.Replace("POLICY", Policy, StringComparison.Ordinal));
        var options = new ServerOptions { DataDirectory = _directory.Sub("data"), TrustedIssuers = [new() { Issuer = "https://idp.example", JwksFile = file }] };
        options.Entitlements.File = file;
        options.Attestation.Policies[Policy] = new AttestationPolicyOptions { Apple = new ApplePolicyOptions { AppIds = [AppleTestCa.AppId] } };
        using var set = new EntitlementRuleSet(options, Microsoft.Extensions.Logging.Abstractions.NullLogger<EntitlementRuleSet>.Instance);
        Assert.Equal(Policy, Assert.Single(set.Rules).AttestationPolicy);

        File.WriteAllText(file, Rules.Replace("POLICY", "nope", StringComparison.Ordinal));
        RuleLoad load = set.Reload();
        Assert.Contains("AttestationPolicy is 'nope'", load.Error, StringComparison.Ordinal);
        Assert.Equal(Policy, Assert.Single(set.Rules).AttestationPolicy);
    }

    private static Task<Api> Patch(TestServer server, string licenceId, object body, string admin) =>
        server.SendAsync(HttpMethod.Patch, $"/v1/admin/licences/{licenceId}", ServerClient.JsonContent(body), admin);
}
