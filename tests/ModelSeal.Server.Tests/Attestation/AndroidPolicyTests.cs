using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ModelSeal.Server.Attestation;

namespace ModelSeal.Server.Tests.Attestation;

/// <summary>
/// The release policy's success path and its mutation matrix, with chains from <see cref="TestAttestationCa"/> (a
/// test-only CA): each mutation is refused with its own reason.
/// </summary>
public sealed class AndroidPolicyTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 12, 5, 12, 0, 0, TimeSpan.Zero);
    private readonly TestAttestationCa _ca = new(Now);
    private readonly ECDiffieHellman _device = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
    private readonly byte[] _challenge = RandomNumberGenerator.GetBytes(32);

    private static AndroidAttestationPolicy Policy => new()
    {
        PackageNames = new HashSet<string>([LeafDescription.Package], StringComparer.Ordinal),
        SigningCertificateDigests = new HashSet<string>([LeafDescription.Digest], StringComparer.Ordinal),
    };

    private byte[] DevicePoint
    {
        get
        {
            ECParameters p = _device.ExportParameters(false);
            return [0x04, .. p.Q.X!, .. p.Q.Y!];
        }
    }

    public void Dispose()
    {
        _ca.Dispose();
        _device.Dispose();
    }

    [Fact]
    public void A_generated_agree_key_in_the_tee_of_an_allowed_app_on_a_locked_device_passes()
    {
        AndroidAttestation attestation = AndroidKeyAttestation.Verify(_ca.Chain(_device, Leaf()), _ca.Trust(), Now);
        Policy.Check(attestation, _challenge, DevicePoint);
        Assert.Equal(AndroidSecurityLevel.TrustedEnvironment, attestation.Description.AttestationSecurityLevel);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void A_flipped_byte_in_a_non_root_certificate_is_refused(int index)
    {
        List<byte[]> chain = _ca.Chain(_device, Leaf());
        chain[index][^1] ^= 0x01; // the last byte of the signature value
        Assert.Equal(AttestationFailure.SignatureInvalid, Refusal(chain));
    }

    [Fact]
    public void A_root_that_is_not_the_pinned_one_is_refused_even_with_the_same_name()
    {
        List<byte[]> chain = _ca.Chain(_device, Leaf());
        using var impostorKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using X509Certificate2 impostor = new CertificateRequest(_ca.Root.SubjectName, impostorKey, HashAlgorithmName.SHA256).CreateSelfSigned(Now.AddYears(-1), Now.AddYears(1));
        chain[^1] = impostor.RawData;
        Assert.Equal(AttestationFailure.UntrustedRoot, Refusal(chain));
    }

    [Fact]
    public void A_time_outside_the_validity_and_a_revoked_serial_are_refused()
    {
        List<byte[]> chain = _ca.Chain(_device, Leaf());
        Assert.Equal(AttestationFailure.CertificateExpired, Assert.Throws<AttestationException>(() => AndroidKeyAttestation.Verify(chain, _ca.Trust(), Now.AddDays(31))).Failure);
        Assert.Equal(AttestationFailure.CertificateRevoked, Assert.Throws<AttestationException>(() => AndroidKeyAttestation.Verify(chain, _ca.Trust("1001"), Now)).Failure);
    }

    [Fact]
    public void Truncated_padded_or_overlong_chains_are_refused_as_malformed()
    {
        List<byte[]> chain = _ca.Chain(_device, Leaf());
        Assert.Equal(AttestationFailure.ChainMalformed, Refusal([chain[0][..^1], chain[1], chain[2]]));
        Assert.Equal(AttestationFailure.ChainMalformed, Refusal([[.. chain[0], 0x00], chain[1], chain[2]]));
        Assert.Equal(AttestationFailure.ChainMalformed, Refusal([chain[2]]));
        Assert.Equal(AttestationFailure.ChainMalformed, Refusal([.. Enumerable.Repeat(chain[1], AndroidKeyAttestation.MaxChainLength), chain[2]]));
    }

    public static TheoryData<string, string> PolicyMutations() => new()
    {
        { "software", nameof(AttestationFailure.SecurityLevel) },
        { "imported", nameof(AttestationFailure.KeyImported) },
        { "sign", nameof(AttestationFailure.Purpose) },
        { "package", nameof(AttestationFailure.PackageNotAllowed) },
        { "digest", nameof(AttestationFailure.SigningCertificateNotAllowed) },
        { "unlocked", nameof(AttestationFailure.DeviceUnlocked) },
        { "unverified-boot", nameof(AttestationFailure.BootNotVerified) },
    };

    [Theory]
    [MemberData(nameof(PolicyMutations))]
    public void A_key_description_the_policy_does_not_allow_is_refused_with_its_reason(string mutation, string reason)
    {
        LeafDescription leaf = mutation switch
        {
            "software" => Leaf() with { Level = LeafDescription.Software },
            "imported" => Leaf() with { Origin = 2 },
            "sign" => Leaf() with { Purposes = [LeafDescription.PurposeSign] },
            "package" => Leaf() with { PackageName = "com.example.repackaged" },
            "digest" => Leaf() with { SigningDigest = Convert.ToHexStringLower(SHA256.HashData("another signer"u8)) },
            "unlocked" => Leaf() with { DeviceLocked = false },
            "unverified-boot" => Leaf() with { BootState = LeafDescription.BootUnverified },
            _ => throw new ArgumentException(mutation, nameof(mutation)),
        };
        AndroidAttestation attestation = AndroidKeyAttestation.Verify(_ca.Chain(_device, leaf), _ca.Trust(), Now);
        Assert.Equal(Enum.Parse<AttestationFailure>(reason), Assert.Throws<AttestationException>(() => Policy.Check(attestation, _challenge, DevicePoint)).Failure);
    }

    [Fact]
    public void A_wrong_challenge_another_device_key_and_tee_under_a_strongbox_policy_are_refused()
    {
        AndroidAttestation attestation = AndroidKeyAttestation.Verify(_ca.Chain(_device, Leaf()), _ca.Trust(), Now);
        Assert.Equal(AttestationFailure.ChallengeMismatch, Assert.Throws<AttestationException>(() => Policy.Check(attestation, RandomNumberGenerator.GetBytes(32), DevicePoint)).Failure);

        using var other = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        ECParameters p = other.ExportParameters(false);
        Assert.Equal(AttestationFailure.KeyMismatch, Assert.Throws<AttestationException>(() => Policy.Check(attestation, _challenge, [0x04, .. p.Q.X!, .. p.Q.Y!])).Failure);

        AndroidAttestationPolicy strongBox = Policy with { MinimumSecurityLevel = AndroidSecurityLevel.StrongBox };
        Assert.Equal(AttestationFailure.SecurityLevel, Assert.Throws<AttestationException>(() => strongBox.Check(attestation, _challenge, DevicePoint)).Failure);
    }

    [Fact]
    public void A_ber_boolean_or_unsorted_tags_in_the_key_description_are_refused_by_strict_der()
    {
        byte[] der = Leaf().Encode();

        // deviceLocked TRUE is 0xFF in DER; 0x01 is BER only.
        int boolean = IndexOf(der, [0x01, 0x01, 0xFF]);
        Assert.True(boolean > 0);
        byte[] ber = [.. der];
        ber[boolean + 2] = 0x01;
        Assert.Equal(AttestationFailure.ExtensionMalformed, Assert.Throws<AttestationException>(() => KeyDescription.Parse(ber)).Failure);
        KeyDescription.Parse(der);

        // The authorization list's fields ascend by tag: [2] before [1] is refused.
        var writer = new System.Formats.Asn1.AsnWriter(System.Formats.Asn1.AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            writer.WriteInteger(300);
            writer.WriteEnumeratedValue(AndroidSecurityLevel.TrustedEnvironment);
            writer.WriteInteger(300);
            writer.WriteEnumeratedValue(AndroidSecurityLevel.TrustedEnvironment);
            writer.WriteOctetString(_challenge);
            writer.WriteOctetString([]);
            using (writer.PushSequence())
            {
            }

            using (writer.PushSequence())
            {
                using (writer.PushSequence(new System.Formats.Asn1.Asn1Tag(System.Formats.Asn1.TagClass.ContextSpecific, 2, true)))
                {
                    writer.WriteInteger(AuthorizationList.AlgorithmEc);
                }

                using (writer.PushSequence(new System.Formats.Asn1.Asn1Tag(System.Formats.Asn1.TagClass.ContextSpecific, 1, true)))
                {
                    using (writer.PushSetOf())
                    {
                        writer.WriteInteger(AuthorizationList.PurposeAgreeKey);
                    }
                }
            }
        }

        Assert.Equal(AttestationFailure.ExtensionMalformed, Assert.Throws<AttestationException>(() => KeyDescription.Parse(writer.Encode())).Failure);
    }

    private static int IndexOf(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle);

    private LeafDescription Leaf() => new() { Challenge = _challenge };

    private AttestationFailure Refusal(IReadOnlyList<byte[]> chain) =>
        Assert.Throws<AttestationException>(() => AndroidKeyAttestation.Verify(chain, _ca.Trust(), Now)).Failure;
}
