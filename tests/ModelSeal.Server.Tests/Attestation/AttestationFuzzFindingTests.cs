using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using ModelSeal.Server.Attestation;

namespace ModelSeal.Server.Tests.Attestation;

/// <summary>
/// Regression tests of what fuzzing the attestation parsers found (docs/fuzzing.md, "Findings"): each input, minimised
/// here, must be refused with an <see cref="AttestationException"/> and its documented reason, never another exception.
/// </summary>
public sealed class AttestationFuzzFindingTests
{
    /// <summary>CBOR's smallest negative integer, -2^64 (major type 1, argument 2^64 - 1): outside <see cref="long"/>.</summary>
    private static readonly byte[] MinusTwoToThe64 = [0x3B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

    public static TheoryData<string, byte[]> CoseKeysOutsideLong() => new()
    {
        // {-2^64: 0}: the map key.
        { "a label", [0xA1, .. MinusTwoToThe64, 0x00] },
        // {1: -2^64}: kty's value.
        { "kty", [0xA1, 0x01, .. MinusTwoToThe64] },
        // {-1: -2^64}: crv's value.
        { "crv", [0xA1, 0x20, .. MinusTwoToThe64] },
    };

    /// <summary>
    /// Finding 2 (authenticator-data): a COSE key with an integer label or kty/crv value outside <see cref="long"/> made
    /// <see cref="AppleAuthenticatorData.CosePoint"/> throw <see cref="OverflowException"/> out of CborReader.ReadInt64.
    /// </summary>
    [Theory]
    [MemberData(nameof(CoseKeysOutsideLong))]
    public void A_cose_key_with_an_integer_outside_long_is_malformed_not_an_overflow(string where, byte[] coseKey)
    {
        AttestationException refused = Assert.Throws<AttestationException>(() => AppleAuthenticatorData.CosePoint(coseKey));
        Assert.True(refused.Failure == AttestationFailure.AuthenticatorDataMalformed, where);

        // The same key inside authenticator data: it parses (the key is one well-formed CBOR value) and its point is refused.
        byte[] authData = [.. new byte[32], AppleAuthenticatorData.AttestedCredentialData, 0, 0, 0, 0, .. "appattest\0\0\0\0\0\0\0"u8, 0x00, 0x00, .. coseKey];
        AppleAuthenticatorData parsed = AppleAuthenticatorData.Parse(authData, attested: true);
        Assert.Equal(coseKey, parsed.CredentialPublicKey);
        Assert.Equal(AttestationFailure.AuthenticatorDataMalformed, Assert.Throws<AttestationException>(() => AppleAuthenticatorData.CosePoint(parsed.CredentialPublicKey!)).Failure);
    }

    /// <summary>
    /// Finding 3 (android-chain): an intermediate whose public key OpenSSL cannot decode — an EC point off the curve,
    /// or an RSA key whose RSAPublicKey is not a SEQUENCE — made the signature check of the certificate below it throw
    /// CryptographicException from GetECDsaPublicKey / GetRSAPublicKey. No signature is needed to get there: the
    /// intermediate's key is used before the intermediate's own signature is checked.
    /// </summary>
    [Theory]
    [InlineData("normal_cert_chain.pem", "2023-03-08T14:32:27Z", false)]
    [InlineData("testdpc_RSA_TEE.pem", "2018-07-29T12:31:54Z", true)]
    public void An_intermediate_with_an_undecodable_public_key_is_a_malformed_chain(string file, string time, bool rsa)
    {
        List<byte[]> chain = [.. AttestationSamples.Chain(file)];
        (int at, int length) = SubjectPublicKeyInfo(chain[1]);
        if (rsa)
        {
            // SPKI = SEQUENCE { AlgorithmIdentifier, BIT STRING { 00, RSAPublicKey } }: the RSAPublicKey's SEQUENCE tag becomes a SET's.
            int rsaPublicKey = chain[1].AsSpan(at, length).IndexOf([(byte)0x00, (byte)0x30]) + at + 1;
            chain[1][rsaPublicKey] = 0x31;
        }
        else
        {
            chain[1][at + length - 5] ^= 0x01; // a byte of the point's y coordinate: the point leaves the curve
        }

        Assert.Equal(AttestationFailure.ChainMalformed, Assert.Throws<AttestationException>(() => AndroidKeyAttestation.Verify(chain, AttestationSamples.GoogleTrust, Time(time))).Failure);
    }

    /// <summary>
    /// Finding 4 (android-chain): a root with a pinned key (so it passes the root check: roots are pinned by key, and
    /// nothing signs a root) but an undecodable validity — a letter in its notAfter — made NotAfter throw
    /// CryptographicException in the validity check.
    /// </summary>
    [Fact]
    public void A_pinned_root_with_an_undecodable_validity_is_a_malformed_chain()
    {
        List<byte[]> chain = [.. AttestationSamples.Chain("normal_cert_chain.pem")];
        byte[] root = chain[^1];
        // notAfter is the second time in the certificate: UTCTime (0x17 0x0D) or GeneralizedTime (0x18 0x0F).
        int notAfter = TimeAt(root, TimeAt(root, 0) + 2);
        root[notAfter + 2 + 3] = (byte)'x'; // the second digit of the month

        Assert.Equal(AttestationFailure.ChainMalformed, Assert.Throws<AttestationException>(() => AndroidKeyAttestation.Verify(chain, AttestationSamples.GoogleTrust, Time("2023-03-08T14:32:27Z"))).Failure);
    }

    /// <summary>
    /// Finding 5 (apple-attestation): an x5c leaf whose public key OpenSSL cannot decode (an EC point off the curve)
    /// made X509Chain.Build throw CryptographicException instead of reporting a chain status.
    /// </summary>
    [Fact]
    public void An_app_attest_leaf_with_an_undecodable_public_key_is_a_malformed_chain()
    {
        const string Kayak = "webauthn4j_kayak_attestation.cbor";
        (string fmt, List<byte[]> x5c, byte[] receipt, byte[] authData) = AppleMutationTests.Decode(File.ReadAllBytes(AttestationSamples.Apple(Kayak)));
        (int at, int length) = SubjectPublicKeyInfo(x5c[0]);
        x5c[0][at + length - 5] ^= 0x01;
        byte[] attestation = AppleTestCa.AttestationObject(fmt, x5c, receipt, authData);
        var policy = new AppleAppAttestPolicy { AppIds = new HashSet<string>([AppleSampleTests.AppId(Kayak)], StringComparer.Ordinal) };
        AttestationException refused = Assert.Throws<AttestationException>(() => AppleAppAttest.VerifyAttestation(
            attestation, AppleSampleTests.ClientDataHash(Kayak), AppleSampleTests.KeyId(Kayak), policy, AttestationSamples.AppleRoot, AppleSampleTests.PinnedTime(Kayak)));
        Assert.Equal(AttestationFailure.ChainMalformed, refused.Failure);
    }

    private static DateTimeOffset Time(string time) => DateTimeOffset.Parse(time, CultureInfo.InvariantCulture);

    /// <summary>Where a certificate's SubjectPublicKeyInfo is in its DER, and its length.</summary>
    private static (int At, int Length) SubjectPublicKeyInfo(byte[] certificate)
    {
        using X509Certificate2 loaded = X509CertificateLoader.LoadCertificate(certificate);
        byte[] spki = loaded.PublicKey.ExportSubjectPublicKeyInfo();
        int at = certificate.AsSpan().IndexOf(spki);
        Assert.True(at > 0, "the certificate's SubjectPublicKeyInfo is not in its DER as exported");
        return (at, spki.Length);
    }

    /// <summary>The offset of the first UTCTime or GeneralizedTime tag at or after <paramref name="from"/>.</summary>
    private static int TimeAt(byte[] der, int from)
    {
        for (int i = from; i < der.Length - 1; i++)
        {
            if ((der[i] == 0x17 && der[i + 1] == 0x0D) || (der[i] == 0x18 && der[i + 1] == 0x0F))
            {
                return i;
            }
        }

        throw new InvalidOperationException("No validity time in the certificate.");
    }
}
