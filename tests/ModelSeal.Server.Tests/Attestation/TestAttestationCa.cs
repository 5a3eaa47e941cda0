using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ModelSeal.Server.Attestation;

namespace ModelSeal.Server.Tests.Attestation;

/// <summary>
/// A TEST-ONLY Android attestation CA: a root and an intermediate generated per test, and leaves that attest any P-256
/// key with a KeyDescription the test chooses. No real device produced these chains; they exist because none of the
/// real samples is an AGREE_KEY key, so the release policy's success path can only be shown with a CA of our own.
/// </summary>
internal sealed class TestAttestationCa : IDisposable
{
    private readonly ECDsa _rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly ECDsa _intermediateKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public TestAttestationCa(DateTimeOffset now)
    {
        Now = now;
        var rootRequest = new CertificateRequest("CN=ModelSeal TEST attestation root", _rootKey, HashAlgorithmName.SHA256);
        rootRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        Root = rootRequest.CreateSelfSigned(now.AddYears(-1), now.AddYears(10));
        var intermediateRequest = new CertificateRequest("CN=ModelSeal TEST attestation intermediate", _intermediateKey, HashAlgorithmName.SHA256);
        intermediateRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using X509Certificate2 signed = intermediateRequest.Create(Root, now.AddDays(-30), now.AddDays(30), [0x10, 0x01]);
        Intermediate = X509CertificateLoader.LoadCertificate(signed.RawData);
    }

    public DateTimeOffset Now { get; }

    public X509Certificate2 Root { get; }

    public X509Certificate2 Intermediate { get; }

    public AndroidTrust Trust(params string[] revokedSerials) => new([Root], revokedSerials);

    /// <summary>The chain (leaf, intermediate, root; DER) attesting <paramref name="deviceKey"/> as <paramref name="leaf"/> says.</summary>
    public List<byte[]> Chain(ECDiffieHellman deviceKey, LeafDescription leaf)
    {
        ArgumentNullException.ThrowIfNull(deviceKey);
        ArgumentNullException.ThrowIfNull(leaf);
        var request = new CertificateRequest(new X500DistinguishedName("CN=Android Keystore Key"), new PublicKey(deviceKey), HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509Extension(KeyDescription.Oid, leaf.Encode(), critical: false));
        using X509Certificate2 certificate = request.Create(
            Intermediate.SubjectName, X509SignatureGenerator.CreateForECDsa(_intermediateKey), Now.AddDays(-1), Now.AddYears(20), [0x01]);
        return [certificate.RawData, Intermediate.RawData, Root.RawData];
    }

    public void Dispose()
    {
        Root.Dispose();
        Intermediate.Dispose();
        _rootKey.Dispose();
        _intermediateKey.Dispose();
    }
}

/// <summary>What a test leaf's KeyDescription says (by default: what the release policy accepts).</summary>
internal sealed record LeafDescription
{
    public const string Package = "com.example.sealedapp";

    public static readonly string Digest = Convert.ToHexStringLower(SHA256.HashData("TEST signing certificate"u8));

    public required byte[] Challenge { get; init; }

    public AndroidSecurityLevel Level { get; init; } = AndroidSecurityLevel.TrustedEnvironment;

    public int[] Purposes { get; init; } = [AuthorizationList.PurposeAgreeKey];

    public int Origin { get; init; } = AuthorizationList.OriginGenerated;

    public string PackageName { get; init; } = Package;

    public string SigningDigest { get; init; } = Digest;

    public bool DeviceLocked { get; init; } = true;

    public VerifiedBootState BootState { get; init; } = VerifiedBootState.Verified;

    /// <summary>The KeyDescription in DER (attestation version 300, KeyMint 300).</summary>
    public byte[] Encode()
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            writer.WriteInteger(300);
            writer.WriteEnumeratedValue(Level);
            writer.WriteInteger(300);
            writer.WriteEnumeratedValue(Level);
            writer.WriteOctetString(Challenge);
            writer.WriteOctetString([]);
            WriteList(writer, software: true);
            WriteList(writer, software: false);
        }

        return writer.Encode();
    }

    private void WriteList(AsnWriter writer, bool software)
    {
        using (writer.PushSequence())
        {
            if (software)
            {
                // attestationApplicationId [709]: the OS's view of the app.
                var app = new AsnWriter(AsnEncodingRules.DER);
                using (app.PushSequence())
                {
                    using (app.PushSetOf())
                    {
                        using (app.PushSequence())
                        {
                            app.WriteOctetString(System.Text.Encoding.UTF8.GetBytes(PackageName));
                            app.WriteInteger(1);
                        }
                    }

                    using (app.PushSetOf())
                    {
                        app.WriteOctetString(Convert.FromHexString(SigningDigest));
                    }
                }

                Explicit(writer, 709, w => w.WriteOctetString(app.Encode()));
                return;
            }

            Explicit(writer, 1, w =>
            {
                using (w.PushSetOf())
                {
                    foreach (int purpose in Purposes)
                    {
                        w.WriteInteger(purpose);
                    }
                }
            });
            Explicit(writer, 2, w => w.WriteInteger(AuthorizationList.AlgorithmEc));
            Explicit(writer, 3, w => w.WriteInteger(256));
            Explicit(writer, 10, w => w.WriteInteger(AuthorizationList.CurveP256));
            Explicit(writer, 702, w => w.WriteInteger(Origin));
            Explicit(writer, 704, w =>
            {
                using (w.PushSequence())
                {
                    w.WriteOctetString(new byte[32]);
                    w.WriteBoolean(DeviceLocked);
                    w.WriteEnumeratedValue(BootState);
                    w.WriteOctetString(new byte[32]);
                }
            });
        }
    }

    private static void Explicit(AsnWriter writer, int tag, Action<AsnWriter> write)
    {
        using (writer.PushSequence(new Asn1Tag(TagClass.ContextSpecific, tag, isConstructed: true)))
        {
            write(writer);
        }
    }
}
