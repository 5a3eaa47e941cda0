using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using ModelSeal.Server.Attestation;

namespace ModelSeal.Server.Tests.Attestation;

/// <summary>
/// Every real Android Key Attestation chain of tests/attestation/android gets the verdict its expected.json gives, at
/// its pinned verification time, with the facts that file records; none passes the release policy, because none is
/// an AGREE_KEY key (the release path is tested with <see cref="TestAttestationCa"/>).
/// </summary>
public sealed class AndroidSampleTests
{
    private static readonly JsonElement Expected = JsonDocument.Parse(File.ReadAllBytes(AttestationSamples.Android("expected.json"))).RootElement;

    /// <summary>The refused chains and why (expected.json's verdicts, as this verifier's reasons).</summary>
    private static readonly Dictionary<string, AttestationFailure> Refused = new(StringComparer.Ordinal)
    {
        ["fake_cert_chain_with_attest_keys.pem"] = AttestationFailure.AttestKeyRule,
        ["testdpc_EC_StrongBox.pem"] = AttestationFailure.UntrustedRoot,
        ["testdpc_RSA_StrongBox.pem"] = AttestationFailure.UntrustedRoot,
        ["ka_marlin_sdk29_TEE_EC_NONE.pem"] = AttestationFailure.UntrustedRoot,
        ["ka_marlin_sdk29_TEE_RSA_NONE.pem"] = AttestationFailure.UntrustedRoot,
        ["ka_invalid_malformed_rot_device_locked.pem"] = AttestationFailure.ExtensionMalformed,
        ["ka_invalid_tags_not_in_ascending_order.pem"] = AttestationFailure.SignatureInvalid,
    };

    public static TheoryData<string> Chains() => [.. Expected.GetProperty("chains").EnumerateObject().Select(c => c.Name)];

    [Fact]
    public void Every_refused_chain_is_one_expected_json_refuses()
    {
        foreach (JsonProperty chain in Expected.GetProperty("chains").EnumerateObject())
        {
            bool accept = chain.Value.GetProperty("expectedVerdict").GetString()!.StartsWith("accept", StringComparison.Ordinal);
            Assert.True(accept != Refused.ContainsKey(chain.Name), chain.Name);
        }
    }

    [Theory]
    [MemberData(nameof(Chains))]
    public void A_real_chain_gets_its_expected_verdict_at_its_pinned_time(string file)
    {
        JsonElement expected = Expected.GetProperty("chains").GetProperty(file);
        DateTimeOffset time = DateTimeOffset.Parse(expected.GetProperty("verificationTime").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        IReadOnlyList<byte[]> chain = AttestationSamples.Chain(file);
        Assert.Equal(expected.GetProperty("certCount").GetInt32(), chain.Count);

        if (Refused.TryGetValue(file, out AttestationFailure reason))
        {
            AttestationException refused = Assert.Throws<AttestationException>(() => AndroidKeyAttestation.Verify(chain, AttestationSamples.GoogleTrust, time));
            Assert.Equal(reason, refused.Failure);
            return;
        }

        AndroidAttestation attestation = AndroidKeyAttestation.Verify(chain, AttestationSamples.GoogleTrust, time);
        JsonElement facts = expected.GetProperty("keyDescription");
        KeyDescription description = attestation.Description;
        Assert.Equal(facts.GetProperty("attestationVersion").GetInt64(), description.AttestationVersion);
        Assert.Equal(Level(facts.GetProperty("attestationSecurityLevel").GetString()!), description.AttestationSecurityLevel);
        Assert.Equal(Level(facts.GetProperty("keyMintOrKeymasterSecurityLevel").GetString()!), description.KeyMintSecurityLevel);
        Assert.Equal(facts.GetProperty("attestationChallenge").GetProperty("hex").GetString(), Convert.ToHexStringLower(description.Challenge));
        JsonElement hardware = facts.GetProperty("hardwareEnforced");
        Assert.Equal(hardware.GetProperty("purpose").EnumerateArray().Select(p => Purpose(p.GetString()!)).Order(), description.HardwareEnforced.Purposes.Order());
        Assert.Equal(AuthorizationList.OriginGenerated, description.HardwareEnforced.Origin);
        if (hardware.TryGetProperty("rootOfTrust", out JsonElement root))
        {
            Assert.Equal(root.GetProperty("deviceLocked").GetBoolean(), description.HardwareEnforced.RootOfTrust!.DeviceLocked);
            Assert.Equal(root.GetProperty("verifiedBootState").GetString(), description.HardwareEnforced.RootOfTrust.BootState.ToString().ToUpperInvariant().Replace("SELFSIGNED", "SELF_SIGNED", StringComparison.Ordinal));
        }

        JsonElement app = facts.GetProperty("attestationApplicationId");
        AttestationApplicationId attested = (description.SoftwareEnforced.ApplicationId ?? description.HardwareEnforced.ApplicationId)!;
        Assert.Equal(app.GetProperty("packageInfos").EnumerateArray().Select(p => p.GetProperty("name").GetString()!), attested.PackageNames);
        Assert.Equal(app.GetProperty("signatureDigestsSha256Hex").EnumerateArray().Select(d => d.GetString()!), attested.SignatureDigests);

        // No real sample is an AGREE_KEY P-256 key: each is refused by the release policy, EC keys for their purpose
        // and every other key type (RSA, ML-DSA) as unsupported, even with its own app allowed and its own key offered.
        var policy = new AndroidAttestationPolicy
        {
            PackageNames = attested.PackageNames.ToHashSet(StringComparer.Ordinal),
            SigningCertificateDigests = attested.SignatureDigests.ToHashSet(StringComparer.Ordinal),
            RequireVerifiedBoot = false,
        };
        bool p256 = expected.GetProperty("leafPublicKeyType").GetString() == "EC-secp256r1";
        byte[] deviceKey = p256 ? AttestationSamples.PointOf(attestation.SubjectPublicKeyInfo) : new byte[65];
        AttestationException policyRefusal = Assert.Throws<AttestationException>(() => policy.Check(attestation, description.Challenge, deviceKey));
        Assert.Equal(p256 ? AttestationFailure.Purpose : AttestationFailure.UnsupportedKeyType, policyRefusal.Failure);
    }

    [Fact]
    public void An_accepted_chain_is_refused_outside_its_validity_and_with_a_revoked_serial()
    {
        IReadOnlyList<byte[]> chain = AttestationSamples.Chain("normal_cert_chain.pem");
        var pinned = DateTimeOffset.Parse("2023-03-08T14:32:27Z", System.Globalization.CultureInfo.InvariantCulture);
        AndroidKeyAttestation.Verify(chain, AttestationSamples.GoogleTrust, pinned);

        // The RKP intermediate lives a few weeks: "now" is outside it.
        Assert.Equal(AttestationFailure.CertificateExpired, Assert.Throws<AttestationException>(() => AndroidKeyAttestation.Verify(chain, AttestationSamples.GoogleTrust, pinned.AddYears(1))).Failure);

        using X509Certificate2 intermediate = X509CertificateLoader.LoadCertificate(chain[1]);
        var revoked = new AndroidTrust(AttestationSamples.GoogleRoots, [.. AttestationSamples.StatusSerials, Convert.ToHexStringLower(intermediate.SerialNumberBytes.Span)]);
        Assert.Equal(AttestationFailure.CertificateRevoked, Assert.Throws<AttestationException>(() => AndroidKeyAttestation.Verify(chain, revoked, pinned)).Failure);
    }

    private static AndroidSecurityLevel Level(string name) => name switch
    {
        "SOFTWARE" => AndroidSecurityLevel.Software,
        "TRUSTED_ENVIRONMENT" => AndroidSecurityLevel.TrustedEnvironment,
        "STRONG_BOX" => AndroidSecurityLevel.StrongBox,
        _ => throw new ArgumentException(name, nameof(name)),
    };

    private static int Purpose(string name) => name switch
    {
        "ENCRYPT" => 0,
        "DECRYPT" => 1,
        "SIGN" => 2,
        "VERIFY" => 3,
        "WRAP_KEY" => 5,
        "AGREE_KEY" => 6,
        "ATTEST_KEY" => 7,
        _ => throw new ArgumentException(name, nameof(name)),
    };
}
