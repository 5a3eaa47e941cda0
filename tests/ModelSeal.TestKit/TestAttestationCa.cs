using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ModelSeal.TestKit;

/// <summary>
/// TEST ONLY — never trust this CA outside tests. An Android attestation CA: a root and an intermediate (serial
/// <c>1001</c>) generated per instance, and leaves (serial <c>01</c>) that attest any P-256 key with a KeyDescription
/// the test chooses. No real device produced these chains; they exist because none of the real samples is an AGREE_KEY
/// key, so the release policy's success path can only be shown with a CA of our own. Shared by the test projects and
/// the benchmarks; it uses no server internals (the extension's OID is written out).
/// </summary>
public sealed class TestAttestationCa : IDisposable
{
    /// <summary>The OID of the Android Key Attestation extension (KeyDescription).</summary>
    public const string KeyDescriptionOid = "1.3.6.1.4.1.11129.2.1.17";

    /// <summary>The intermediate's serial, as a status list names it (lowercase hex without leading zeros).</summary>
    public const string IntermediateSerial = "1001";

    /// <summary>The leaf's serial, as a status list names it.</summary>
    public const string LeafSerial = "1";

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

    /// <summary>The root in PEM (for <c>Attestation:Android:RootsFile</c>).</summary>
    public string RootPem() => Root.ExportCertificatePem();

    /// <summary>The chain (leaf, intermediate, root; DER) attesting <paramref name="deviceKey"/> as <paramref name="leaf"/> says.</summary>
    public List<byte[]> Chain(ECDiffieHellman deviceKey, LeafDescription leaf)
    {
        ArgumentNullException.ThrowIfNull(deviceKey);
        ArgumentNullException.ThrowIfNull(leaf);
        var request = new CertificateRequest(new X500DistinguishedName("CN=Android Keystore Key"), new PublicKey(deviceKey), HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509Extension(KeyDescriptionOid, leaf.Encode(), critical: false));
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

/// <summary>
/// TEST ONLY. What a <see cref="TestAttestationCa"/> leaf's KeyDescription says (by default: what a release policy for
/// <see cref="Package"/> and <see cref="Digest"/> accepts). Values are KeyMint's numbers.
/// </summary>
public sealed record LeafDescription
{
    public const string Package = "com.example.sealedapp";

    /// <summary>KeyMint SecurityLevel: Software.</summary>
    public const int Software = 0;

    /// <summary>KeyMint SecurityLevel: TrustedEnvironment.</summary>
    public const int TrustedEnvironment = 1;

    /// <summary>KeyMint SecurityLevel: StrongBox.</summary>
    public const int StrongBox = 2;

    /// <summary>KeyPurpose SIGN.</summary>
    public const int PurposeSign = 2;

    /// <summary>KeyPurpose AGREE_KEY.</summary>
    public const int PurposeAgreeKey = 6;

    /// <summary>KeyOrigin GENERATED.</summary>
    public const int OriginGenerated = 0;

    /// <summary>KeyOrigin IMPORTED.</summary>
    public const int OriginImported = 2;

    /// <summary>VerifiedBootState VERIFIED.</summary>
    public const int BootVerified = 0;

    /// <summary>VerifiedBootState UNVERIFIED.</summary>
    public const int BootUnverified = 2;

    private const int AlgorithmEc = 3;

    /// <summary>An ASN.1 ENUMERATED written from its number.</summary>
    private enum Enumerated
    {
    }

    private const int CurveP256 = 1;

    /// <summary>The lowercase hex SHA-256 of the TEST signing certificate.</summary>
    public static readonly string Digest = Convert.ToHexStringLower(SHA256.HashData("TEST signing certificate"u8));

    public required byte[] Challenge { get; init; }

    public int Level { get; init; } = TrustedEnvironment;

    public IReadOnlyList<int> Purposes { get; init; } = [PurposeAgreeKey];

    public int Origin { get; init; } = OriginGenerated;

    public string PackageName { get; init; } = Package;

    public string SigningDigest { get; init; } = Digest;

    public bool DeviceLocked { get; init; } = true;

    public int BootState { get; init; } = BootVerified;

    /// <summary>The KeyDescription in DER (attestation version 300, KeyMint 300).</summary>
    public byte[] Encode()
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            writer.WriteInteger(300);
            writer.WriteEnumeratedValue((Enumerated)Level);
            writer.WriteInteger(300);
            writer.WriteEnumeratedValue((Enumerated)Level);
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
            Explicit(writer, 2, w => w.WriteInteger(AlgorithmEc));
            Explicit(writer, 3, w => w.WriteInteger(256));
            Explicit(writer, 10, w => w.WriteInteger(CurveP256));
            Explicit(writer, 702, w => w.WriteInteger(Origin));
            Explicit(writer, 704, w =>
            {
                using (w.PushSequence())
                {
                    w.WriteOctetString(new byte[32]);
                    w.WriteBoolean(DeviceLocked);
                    w.WriteEnumeratedValue((Enumerated)BootState);
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
