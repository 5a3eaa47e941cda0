using System.Formats.Cbor;
using System.Security.Cryptography;
using System.Text;
using ModelSeal.Server.Attestation;

namespace ModelSeal.Server.Tests.Attestation;

/// <summary>
/// The App Attest mutation matrix: real samples changed one way at a time (and, where Apple's nonce covers what is
/// changed, evidence from <see cref="AppleTestCa"/>), each refused with its own reason.
/// </summary>
public sealed class AppleMutationTests : IDisposable
{
    private const string Kayak = "webauthn4j_kayak_attestation.cbor";
    private const string KayakAssertion = "webauthn4j_kayak_assertion.cbor";
    private const string Development = "veehaitch_ios14_4_attestation.cbor";

    private static readonly DateTimeOffset Now = new(2026, 12, 5, 12, 0, 0, TimeSpan.Zero);
    private readonly AppleTestCa _ca = new(Now);
    private readonly ECDsa _appAttestKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly byte[] _clientDataHash = SHA256.HashData(RandomNumberGenerator.GetBytes(32));

    private static AppleAppAttestPolicy KayakPolicy => new() { AppIds = new HashSet<string>([AppleSampleTests.AppId(Kayak)], StringComparer.Ordinal) };

    public void Dispose()
    {
        _ca.Dispose();
        _appAttestKey.Dispose();
    }

    [Fact]
    public void The_unmutated_evidence_verifies()
    {
        AppleSampleTests.Verify(Kayak, KayakPolicy);
        AppleAttestation attestation = VerifyTest(_ca.Attestation(_appAttestKey, _clientDataHash, new AppleTestEvidence()));
        Assert.Equal(AppleTestCa.PointOf(_appAttestKey), attestation.PublicKey);
        Assert.Equal(AppleTestCa.AppId, attestation.AppId);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void A_flipped_byte_in_the_leaf_or_the_intermediate_is_refused(int index)
    {
        (string fmt, List<byte[]> x5c, byte[] receipt, byte[] authData) = Decode(Sample(Kayak));
        x5c[index][^1] ^= 0x01; // the last byte of the signature value
        Assert.Equal(AttestationFailure.SignatureInvalid, KayakRefusal(AppleTestCa.AttestationObject(fmt, x5c, receipt, authData)));
    }

    [Fact]
    public void A_root_that_is_not_the_pinned_one_is_refused()
    {
        // Apple's own other root (it signs receipts) pinned instead of the App Attestation root.
        Assert.Equal(AttestationFailure.UntrustedRoot, Refusal(() => AppleAppAttest.VerifyAttestation(
            Sample(Kayak), AppleSampleTests.ClientDataHash(Kayak), AppleSampleTests.KeyId(Kayak), KayakPolicy, AttestationSamples.AppleRootG3, AppleSampleTests.PinnedTime(Kayak))));

        // A well-formed chain from another CA, its own root sent along in x5c, against Apple's pinned root.
        byte[] attestation = _ca.Attestation(_appAttestKey, _clientDataHash, new AppleTestEvidence());
        (string fmt, List<byte[]> x5c, byte[] receipt, byte[] authData) = Decode(attestation);
        byte[] withRoot = AppleTestCa.AttestationObject(fmt, [.. x5c, _ca.Root.RawData], receipt, authData);
        Assert.Equal(AttestationFailure.UntrustedRoot, Refusal(() => AppleAppAttest.VerifyAttestation(
            withRoot, _clientDataHash, KeyIdOf(_appAttestKey), AppleTestCa.Policy, AttestationSamples.AppleRoot, Now)));
    }

    [Theory]
    [InlineData(-2)]
    [InlineData(3)]
    public void A_time_outside_the_leafs_validity_is_refused(int days)
    {
        // The KAYAK leaf is valid 2020-09-27T20:28:18Z to 2020-09-30T20:28:18Z; the pinned time is 2020-09-28T00:00:00Z.
        DateTimeOffset time = AppleSampleTests.PinnedTime(Kayak).AddDays(days);
        Assert.Equal(AttestationFailure.CertificateExpired, Refusal(() => AppleAppAttest.VerifyAttestation(
            Sample(Kayak), AppleSampleTests.ClientDataHash(Kayak), AppleSampleTests.KeyId(Kayak), KayakPolicy, AttestationSamples.AppleRoot, time)));
    }

    [Fact]
    public void A_wrong_challenge_is_refused()
    {
        // Another challenge, and the right challenge unhashed (the nonce covers the exact clientDataHash).
        foreach (byte[] clientDataHash in new[] { SHA256.HashData("another challenge"u8), Encoding.ASCII.GetBytes("1234567890abcdefgh") })
        {
            Assert.Equal(AttestationFailure.ChallengeMismatch, Refusal(() => AppleAppAttest.VerifyAttestation(
                Sample(Kayak), clientDataHash, AppleSampleTests.KeyId(Kayak), KayakPolicy, AttestationSamples.AppleRoot, AppleSampleTests.PinnedTime(Kayak))));
        }
    }

    [Fact]
    public void A_wrong_app_id_is_refused()
    {
        var policy = new AppleAppAttestPolicy { AppIds = new HashSet<string>(["8YE23NZS57.com.kayak.travel.repackaged", "ABCDE12345.com.kayak.travel"], StringComparer.Ordinal) };
        Assert.Equal(AttestationFailure.AppIdNotAllowed, KayakRefusal(Sample(Kayak), policy));
    }

    [Fact]
    public void A_development_key_is_refused_when_only_production_is_allowed()
    {
        var policy = new AppleAppAttestPolicy { AppIds = new HashSet<string>([AppleSampleTests.AppId(Development)], StringComparer.Ordinal) };
        Assert.Equal(AttestationFailure.EnvironmentNotAllowed, Refusal(() => AppleSampleTests.Verify(Development, policy)));
        Assert.Equal(AttestationFailure.EnvironmentNotAllowed, Refusal(() => VerifyTest(_ca.Attestation(_appAttestKey, _clientDataHash, new AppleTestEvidence { Development = true }))));
        Assert.Equal(AppAttestEnvironment.Development, VerifyTest(_ca.Attestation(_appAttestKey, _clientDataHash, new AppleTestEvidence { Development = true }), AppleTestCa.Policy with { AllowDevelopment = true }).Environment);
    }

    [Fact]
    public void An_attestation_whose_counter_is_not_zero_is_refused()
    {
        Assert.Equal(AttestationFailure.CounterNotZero, Refusal(() => VerifyTest(_ca.Attestation(_appAttestKey, _clientDataHash, new AppleTestEvidence { Counter = 1 }))));
    }

    [Fact]
    public void A_key_id_that_is_not_the_attested_keys_is_refused()
    {
        // The client claims another key id.
        byte[] claimed = AppleSampleTests.KeyId(Kayak);
        claimed[0] ^= 0x01;
        Assert.Equal(AttestationFailure.KeyIdMismatch, Refusal(() => AppleAppAttest.VerifyAttestation(
            Sample(Kayak), AppleSampleTests.ClientDataHash(Kayak), claimed, KayakPolicy, AttestationSamples.AppleRoot, AppleSampleTests.PinnedTime(Kayak))));

        // authData's credential id is not the certificate key's id.
        Assert.Equal(AttestationFailure.KeyIdMismatch, Refusal(() => VerifyTest(_ca.Attestation(_appAttestKey, _clientDataHash, new AppleTestEvidence { CredentialId = new byte[32] }))));
    }

    [Fact]
    public void A_missing_or_non_der_nonce_extension_a_foreign_credential_key_and_a_p384_key_are_refused()
    {
        Assert.Equal(AttestationFailure.ExtensionMissing, Refusal(() => VerifyTest(_ca.Attestation(_appAttestKey, _clientDataHash, new AppleTestEvidence { OmitNonce = true }))));

        // [1] EXPLICIT missing, a trailing byte, a 31-byte nonce, and a BER long-form length.
        byte[][] malformed =
        [
            [0x30, 0x22, 0x04, 0x20, .. new byte[32]],
            [0x30, 0x25, 0xA1, 0x22, 0x04, 0x20, .. new byte[32], 0x00],
            [0x30, 0x23, 0xA1, 0x21, 0x04, 0x1F, .. new byte[31]],
            [0x30, 0x25, 0xA1, 0x23, 0x04, 0x81, 0x20, .. new byte[32]],
        ];
        foreach (byte[] extension in malformed)
        {
            Assert.Equal(AttestationFailure.ExtensionMalformed, Refusal(() => VerifyTest(_ca.Attestation(_appAttestKey, _clientDataHash, new AppleTestEvidence { NonceExtension = extension }))));
        }

        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        Assert.Equal(AttestationFailure.KeyIdMismatch, Refusal(() => VerifyTest(_ca.Attestation(_appAttestKey, _clientDataHash, new AppleTestEvidence { CredentialKey = AppleTestCa.PointOf(other) }))));

        using var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        Assert.Equal(AttestationFailure.UnsupportedKeyType, Refusal(() => AppleAppAttest.VerifyAttestation(
            _ca.Attestation(p384, _clientDataHash, new AppleTestEvidence()), _clientDataHash, KeyIdOf(p384), AppleTestCa.Policy, _ca.Root, Now)));
    }

    [Fact]
    public void An_assertion_whose_counter_does_not_increase_is_refused()
    {
        AppleAttestation attestation = AppleSampleTests.Verify(Kayak, KayakPolicy);
        byte[] clientDataHash = SHA256.HashData("1234567890abcdefgh"u8);
        Assert.Equal(1u, AppleAppAttest.VerifyAssertion(Sample(KayakAssertion), clientDataHash, attestation.PublicKey, attestation.AppId, 0).Counter);
        foreach (uint stored in new uint[] { 1, 2, uint.MaxValue })
        {
            Assert.Equal(AttestationFailure.CounterNotIncreasing, Refusal(() => AppleAppAttest.VerifyAssertion(Sample(KayakAssertion), clientDataHash, attestation.PublicKey, attestation.AppId, stored)));
        }
    }

    [Fact]
    public void A_flipped_assertion_signature_byte_another_client_data_hash_or_another_app_id_is_refused()
    {
        AppleAttestation attestation = AppleSampleTests.Verify(Kayak, KayakPolicy);
        byte[] clientDataHash = SHA256.HashData("1234567890abcdefgh"u8);
        (byte[] signature, byte[] authenticatorData) = DecodeAssertion(Sample(KayakAssertion));
        signature[^1] ^= 0x01;
        byte[] flipped = AppleTestCa.AssertionObject(signature, authenticatorData);
        Assert.Equal(AttestationFailure.AssertionSignatureInvalid, Refusal(() => AppleAppAttest.VerifyAssertion(flipped, clientDataHash, attestation.PublicKey, attestation.AppId, 0)));
        Assert.Equal(AttestationFailure.AssertionSignatureInvalid, Refusal(() => AppleAppAttest.VerifyAssertion(Sample(KayakAssertion), SHA256.HashData("another"u8), attestation.PublicKey, attestation.AppId, 0)));
        Assert.Equal(AttestationFailure.AppIdNotAllowed, Refusal(() => AppleAppAttest.VerifyAssertion(Sample(KayakAssertion), clientDataHash, attestation.PublicKey, "8YE23NZS57.com.other", 0)));
    }

    [Fact]
    public void An_assertion_over_one_device_key_does_not_bind_another()
    {
        byte[] challenge = RandomNumberGenerator.GetBytes(32);
        using var device = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        using var other = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        byte[] binding = AppleAppAttestBinding.DeviceKeyClientDataHash(challenge, AttestationSamples.PointOf(device.PublicKey.ExportSubjectPublicKeyInfo()));
        AppleAttestation attestation = VerifyTest(_ca.Attestation(_appAttestKey, _clientDataHash, new AppleTestEvidence()));
        byte[] assertion = AppleTestCa.Assertion(_appAttestKey, binding, counter: 1);

        Assert.Equal(1u, AppleAppAttest.VerifyAssertion(assertion, binding, attestation.PublicKey, attestation.AppId, 0).Counter);
        byte[] otherBinding = AppleAppAttestBinding.DeviceKeyClientDataHash(challenge, AttestationSamples.PointOf(other.PublicKey.ExportSubjectPublicKeyInfo()));
        Assert.Equal(AttestationFailure.AssertionSignatureInvalid, Refusal(() => AppleAppAttest.VerifyAssertion(assertion, otherBinding, attestation.PublicKey, attestation.AppId, 0)));
        byte[] otherChallenge = AppleAppAttestBinding.DeviceKeyClientDataHash(RandomNumberGenerator.GetBytes(32), AttestationSamples.PointOf(device.PublicKey.ExportSubjectPublicKeyInfo()));
        Assert.Equal(AttestationFailure.AssertionSignatureInvalid, Refusal(() => AppleAppAttest.VerifyAssertion(assertion, otherChallenge, attestation.PublicKey, attestation.AppId, 0)));
    }

    [Fact]
    public void The_device_key_client_data_hash_is_the_documented_encoding()
    {
        // docs/protocol.md §2.6, computed independently (Python hashlib) for challenge 00..1f and key 04 || 01*32 || 02*32.
        byte[] key = [0x04, .. Enumerable.Repeat((byte)1, 32), .. Enumerable.Repeat((byte)2, 32)];
        byte[] challenge = [.. Enumerable.Range(0, 32).Select(i => (byte)i)];
        Assert.Equal("f4e1958aefcf1c1b506121b2b457aa8aa44fd59095eca96ac336a316c6f6eee8", Convert.ToHexStringLower(AppleAppAttestBinding.DeviceKeyClientDataHash(challenge, key)));
        Assert.Throws<ArgumentException>(() => AppleAppAttestBinding.DeviceKeyClientDataHash(challenge, key.AsSpan(0, 33)));
        Assert.Throws<ArgumentException>(() => AppleAppAttestBinding.DeviceKeyClientDataHash([], key));
    }

    [Fact]
    public void Truncated_padded_or_mistyped_cbor_is_refused_as_malformed()
    {
        byte[] sample = Sample(Kayak);
        Assert.Equal(AttestationFailure.CborMalformed, KayakRefusal(sample[..^1]));
        Assert.Equal(AttestationFailure.CborMalformed, KayakRefusal(sample[..100]));
        Assert.Equal(AttestationFailure.CborMalformed, KayakRefusal([.. sample, 0x00]));
        Assert.Equal(AttestationFailure.CborMalformed, KayakRefusal([]));
        Assert.Equal(AttestationFailure.CborMalformed, KayakRefusal(new byte[AppleAppAttest.MaxObjectSize + 1]));

        // An indefinite-length top-level map, and a member given twice.
        Assert.Equal(AttestationFailure.CborMalformed, KayakRefusal([0xBF, .. sample[1..], 0xFF]));
        Assert.Equal(AttestationFailure.CborMalformed, KayakRefusal([0xA4, .. sample[1..], 0x63, .. "fmt"u8, 0x63, .. "xyz"u8]));

        (string fmt, List<byte[]> x5c, byte[] receipt, byte[] authData) = Decode(sample);
        foreach (string member in new[] { "fmt", "attStmt", "authData", "x5c", "receipt" })
        {
            Assert.Equal(AttestationFailure.CborMalformed, KayakRefusal(Rewrite(fmt, x5c, receipt, authData, mistyped: member)));
            Assert.Equal(AttestationFailure.CborMalformed, KayakRefusal(Rewrite(fmt, x5c, receipt, authData, missing: member)));
        }

        Assert.Equal(AttestationFailure.CborMalformed, KayakRefusal(Rewrite(fmt, x5c, receipt, authData, extra: true)));
        Assert.Equal(AttestationFailure.FormatUnsupported, KayakRefusal(AppleTestCa.AttestationObject("packed", x5c, receipt, authData)));
        Assert.Equal(AttestationFailure.ChainMalformed, KayakRefusal(AppleTestCa.AttestationObject(fmt, [x5c[0]], receipt, authData)));
        Assert.Equal(AttestationFailure.ChainMalformed, KayakRefusal(AppleTestCa.AttestationObject(fmt, [x5c[0][..^1], x5c[1]], receipt, authData)));

        (byte[] signature, byte[] authenticatorData) = DecodeAssertion(Sample(KayakAssertion));
        byte[] assertion = Sample(KayakAssertion);
        byte[] point = AppleSampleTests.Verify(Kayak, KayakPolicy).PublicKey;
        foreach (byte[] malformed in new[] { assertion[..^1], [.. assertion, 0xFF], AppleTestCa.AttestationObject(fmt, x5c, receipt, authData), Swap(signature, authenticatorData) })
        {
            Assert.Equal(AttestationFailure.CborMalformed, Refusal(() => AppleAppAttest.VerifyAssertion(malformed, SHA256.HashData("1234567890abcdefgh"u8), point, AppleSampleTests.AppId(Kayak), 0)));
        }
    }

    [Fact]
    public void Authenticator_data_that_does_not_add_up_is_refused()
    {
        (string fmt, List<byte[]> x5c, byte[] receipt, byte[] authData) = Decode(Sample(Kayak));
        Assert.Equal(AttestationFailure.AuthenticatorDataMalformed, KayakRefusal(AppleTestCa.AttestationObject(fmt, x5c, receipt, authData[..36])));
        Assert.Equal(AttestationFailure.AuthenticatorDataMalformed, KayakRefusal(AppleTestCa.AttestationObject(fmt, x5c, receipt, authData[..^1])));
        Assert.Equal(AttestationFailure.AuthenticatorDataMalformed, KayakRefusal(AppleTestCa.AttestationObject(fmt, x5c, receipt, [.. authData, 0x00])));
        byte[] noAttestedData = [.. authData];
        noAttestedData[32] = 0x00;
        Assert.Equal(AttestationFailure.AuthenticatorDataMalformed, KayakRefusal(AppleTestCa.AttestationObject(fmt, x5c, receipt, noAttestedData)));

        // The 2026 guide sample's trailing extension map is accepted; anything after it is not.
        (string fmt26, List<byte[]> x5c26, byte[] receipt26, byte[] authData26) = Decode(Sample("apple_guide_2026_attestation.cbor"));
        byte[] padded = AppleTestCa.AttestationObject(fmt26, x5c26, receipt26, [.. authData26, 0xA0]);
        Assert.Equal(AttestationFailure.AuthenticatorDataMalformed, Refusal(() => AppleAppAttest.VerifyAttestation(
            padded, AppleSampleTests.ClientDataHash("apple_guide_2026_attestation.cbor"), AppleSampleTests.KeyId("apple_guide_2026_attestation.cbor"), KayakPolicy, AttestationSamples.AppleRoot, Now)));
    }

    [Fact]
    public void Every_attestation_reason_is_documented_with_its_audit_code()
    {
        string protocol = File.ReadAllText(Path.Combine(RepoPaths.Root, "docs", "protocol.md"));
        string section = protocol[protocol.IndexOf("### 2.6 Device attestation", StringComparison.Ordinal)..protocol.IndexOf("## 3. Administration", StringComparison.Ordinal)];
        Assert.All(Enum.GetValues<AttestationFailure>(), r => Assert.Contains($"`{r.Code()}`", section, StringComparison.Ordinal));
        Assert.Contains(AppleAppAttestBinding.DeviceKeyLabel, section, StringComparison.Ordinal);
    }

    /// <summary>An attestation object's members.</summary>
    internal static (string Fmt, List<byte[]> X5c, byte[] Receipt, byte[] AuthData) Decode(byte[] attestation)
    {
        var reader = new CborReader(attestation);
        reader.ReadStartMap();
        string fmt = string.Empty;
        List<byte[]> x5c = [];
        byte[] receipt = [];
        byte[] authData = [];
        while (reader.PeekState() != CborReaderState.EndMap)
        {
            switch (reader.ReadTextString())
            {
                case "fmt": fmt = reader.ReadTextString(); break;
                case "authData": authData = reader.ReadByteString(); break;
                default:
                    reader.ReadStartMap();
                    while (reader.PeekState() != CborReaderState.EndMap)
                    {
                        if (reader.ReadTextString() == "x5c")
                        {
                            reader.ReadStartArray();
                            while (reader.PeekState() != CborReaderState.EndArray)
                            {
                                x5c.Add(reader.ReadByteString());
                            }

                            reader.ReadEndArray();
                        }
                        else
                        {
                            receipt = reader.ReadByteString();
                        }
                    }

                    reader.ReadEndMap();
                    break;
            }
        }

        return (fmt, x5c, receipt, authData);
    }

    private static (byte[] Signature, byte[] AuthenticatorData) DecodeAssertion(byte[] assertion)
    {
        var reader = new CborReader(assertion);
        reader.ReadStartMap();
        Dictionary<string, byte[]> members = new(StringComparer.Ordinal);
        while (reader.PeekState() != CborReaderState.EndMap)
        {
            members[reader.ReadTextString()] = reader.ReadByteString();
        }

        return (members["signature"], members["authenticatorData"]);
    }

    /// <summary>The assertion's members with their values' types swapped: signature an integer, authenticatorData a text string.</summary>
    private static byte[] Swap(byte[] signature, byte[] authenticatorData)
    {
        var writer = new CborWriter();
        writer.WriteStartMap(2);
        writer.WriteTextString("signature");
        writer.WriteInt32(signature.Length);
        writer.WriteTextString("authenticatorData");
        writer.WriteTextString(Convert.ToHexStringLower(authenticatorData));
        writer.WriteEndMap();
        return writer.Encode();
    }

    /// <summary>The attestation object rewritten with one member of the wrong type (an integer) or missing, or with an extra member.</summary>
    private static byte[] Rewrite(string fmt, List<byte[]> x5c, byte[] receipt, byte[] authData, string? mistyped = null, string? missing = null, bool extra = false)
    {
        // Written with indefinite lengths, encoded with definite ones (the verifier refuses indefinite lengths on their own).
        var writer = new CborWriter(CborConformanceMode.Strict, convertIndefiniteLengthEncodings: true);
        writer.WriteStartMap(null);
        Member(writer, "fmt", mistyped, missing, w => w.WriteTextString(fmt));
        Member(writer, "attStmt", mistyped, missing, w =>
        {
            w.WriteStartMap(null);
            Member(w, "x5c", mistyped, missing, x =>
            {
                x.WriteStartArray(x5c.Count);
                x5c.ForEach(c => x.WriteByteString(c));
                x.WriteEndArray();
            });
            Member(w, "receipt", mistyped, missing, r => r.WriteByteString(receipt));
            w.WriteEndMap();
        });
        Member(writer, "authData", mistyped, missing, w => w.WriteByteString(authData));
        if (extra)
        {
            writer.WriteTextString("extra");
            writer.WriteNull();
        }

        writer.WriteEndMap();
        return writer.Encode();
    }

    private static void Member(CborWriter writer, string name, string? mistyped, string? missing, Action<CborWriter> write)
    {
        if (name == missing)
        {
            return;
        }

        writer.WriteTextString(name);
        if (name == mistyped)
        {
            writer.WriteInt32(7);
        }
        else
        {
            write(writer);
        }
    }

    private static byte[] Sample(string file) => File.ReadAllBytes(AttestationSamples.Apple(file));

    private static byte[] KeyIdOf(ECDsa key) => SHA256.HashData(AppleTestCa.PointOf(key));

    private static AttestationFailure Refusal(Action verify) => Assert.Throws<AttestationException>(verify).Failure;

    private static AttestationFailure KayakRefusal(byte[] attestation, AppleAppAttestPolicy? policy = null) => Refusal(() => AppleAppAttest.VerifyAttestation(
        attestation, AppleSampleTests.ClientDataHash(Kayak), AppleSampleTests.KeyId(Kayak), policy ?? KayakPolicy, AttestationSamples.AppleRoot, AppleSampleTests.PinnedTime(Kayak)));

    private AppleAttestation VerifyTest(byte[] attestation, AppleAppAttestPolicy? policy = null) =>
        AppleAppAttest.VerifyAttestation(attestation, _clientDataHash, KeyIdOf(_appAttestKey), policy ?? AppleTestCa.Policy, _ca.Root, Now);
}
