using System.Buffers.Binary;
using System.Formats.Asn1;
using System.Formats.Cbor;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ModelSeal.Server.Attestation;

namespace ModelSeal.Server.Tests.Attestation;

/// <summary>
/// A TEST-ONLY App Attest CA: a root and an intermediate generated per test, and attestation objects for any P-256 key
/// with the authData a test chooses. No Apple device produced these; they exist for the mutations a real sample cannot
/// show, because the nonce in Apple's leaf covers authData (a counter other than 0, a credential id that is not the
/// key id) — and for assertions made with a key the test holds.
/// </summary>
internal sealed class AppleTestCa : IDisposable
{
    public const string AppId = "TEST123456.com.example.sealedapp";

    private readonly ECDsa _rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
    private readonly ECDsa _intermediateKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);

    public AppleTestCa(DateTimeOffset now)
    {
        Now = now;
        var rootRequest = new CertificateRequest("CN=ModelSeal TEST App Attestation Root CA", _rootKey, HashAlgorithmName.SHA384);
        rootRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        rootRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        Root = rootRequest.CreateSelfSigned(now.AddYears(-1), now.AddYears(10));
        var intermediateRequest = new CertificateRequest("CN=ModelSeal TEST App Attestation CA 1", _intermediateKey, HashAlgorithmName.SHA384);
        intermediateRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        intermediateRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using X509Certificate2 signed = intermediateRequest.Create(Root, now.AddDays(-30), now.AddDays(30), [0x20, 0x01]);
        Intermediate = X509CertificateLoader.LoadCertificate(signed.RawData);
    }

    public DateTimeOffset Now { get; }

    public X509Certificate2 Root { get; }

    public X509Certificate2 Intermediate { get; }

    public static AppleAppAttestPolicy Policy => new() { AppIds = new HashSet<string>([AppId], StringComparer.Ordinal) };

    /// <summary>The uncompressed point of a P-256 key.</summary>
    public static byte[] PointOf(ECDsa key)
    {
        ArgumentNullException.ThrowIfNull(key);
        ECParameters p = key.ExportParameters(false);
        return [0x04, .. p.Q.X!, .. p.Q.Y!];
    }

    /// <summary>An attestation object for <paramref name="key"/> over <paramref name="clientDataHash"/>, its authData as <paramref name="evidence"/> says.</summary>
    public byte[] Attestation(ECDsa key, byte[] clientDataHash, AppleTestEvidence evidence)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(evidence);
        byte[] point = PointOf(key);
        byte[] keyId = SHA256.HashData(point);
        byte[] authData = AuthData(evidence.AppId, evidence.Counter, [.. evidence.Development ? "appattestdevelop"u8 : "appattest\0\0\0\0\0\0\0"u8], evidence.CredentialId ?? keyId, Cose(evidence.CredentialKey ?? point));

        var nonce = new AsnWriter(AsnEncodingRules.DER);
        using (nonce.PushSequence())
        {
            using (nonce.PushSequence(new Asn1Tag(TagClass.ContextSpecific, 1, isConstructed: true)))
            {
                nonce.WriteOctetString(SHA256.HashData([.. authData, .. clientDataHash]));
            }
        }

        var request = new CertificateRequest($"CN={Convert.ToHexStringLower(keyId)}", key, HashAlgorithmName.SHA256);
        if (!evidence.OmitNonce)
        {
            request.CertificateExtensions.Add(new X509Extension(AppleAppAttest.NonceOid, evidence.NonceExtension ?? nonce.Encode(), critical: false));
        }
        using X509Certificate2 leaf = request.Create(
            Intermediate.SubjectName, X509SignatureGenerator.CreateForECDsa(_intermediateKey), Now.AddDays(-1), Now.AddDays(2), [0x01]);
        return AttestationObject("apple-appattest", [leaf.RawData, Intermediate.RawData], [0x30, 0x80], authData);
    }

    /// <summary>An assertion by <paramref name="key"/> over <paramref name="clientDataHash"/> with the given counter.</summary>
    public static byte[] Assertion(ECDsa key, byte[] clientDataHash, uint counter, string appId = AppId)
    {
        ArgumentNullException.ThrowIfNull(key);
        byte[] authenticatorData = AuthData(appId, counter, null, null, null);
        byte[] signature = key.SignData(SHA256.HashData([.. authenticatorData, .. clientDataHash]), HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
        return AssertionObject(signature, authenticatorData);
    }

    /// <summary>An attestation object of these members, encoded as Apple encodes it (fmt, attStmt {x5c, receipt}, authData).</summary>
    public static byte[] AttestationObject(string fmt, IReadOnlyList<byte[]> x5c, byte[] receipt, byte[] authData)
    {
        ArgumentNullException.ThrowIfNull(x5c);
        var writer = new CborWriter();
        writer.WriteStartMap(3);
        writer.WriteTextString("fmt");
        writer.WriteTextString(fmt);
        writer.WriteTextString("attStmt");
        writer.WriteStartMap(2);
        writer.WriteTextString("x5c");
        writer.WriteStartArray(x5c.Count);
        foreach (byte[] certificate in x5c)
        {
            writer.WriteByteString(certificate);
        }

        writer.WriteEndArray();
        writer.WriteTextString("receipt");
        writer.WriteByteString(receipt);
        writer.WriteEndMap();
        writer.WriteTextString("authData");
        writer.WriteByteString(authData);
        writer.WriteEndMap();
        return writer.Encode();
    }

    public static byte[] AssertionObject(byte[] signature, byte[] authenticatorData)
    {
        var writer = new CborWriter();
        writer.WriteStartMap(2);
        writer.WriteTextString("signature");
        writer.WriteByteString(signature);
        writer.WriteTextString("authenticatorData");
        writer.WriteByteString(authenticatorData);
        writer.WriteEndMap();
        return writer.Encode();
    }

    public void Dispose()
    {
        Root.Dispose();
        Intermediate.Dispose();
        _rootKey.Dispose();
        _intermediateKey.Dispose();
    }

    /// <summary>rpIdHash, flags (AT when a credential follows), counter, and the attested credential data.</summary>
    private static byte[] AuthData(string appId, uint counter, byte[]? aaguid, byte[]? credentialId, byte[]? cose)
    {
        byte[] counterBytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(counterBytes, counter);
        byte[] header = [.. AppleAppAttest.RpIdHash(appId), (byte)(credentialId is null ? 0x00 : AppleAuthenticatorData.AttestedCredentialData), .. counterBytes];
        return credentialId is null ? header : [.. header, .. aaguid!, (byte)(credentialId.Length >> 8), (byte)credentialId.Length, .. credentialId, .. cose!];
    }

    private static byte[] Cose(byte[] point)
    {
        var writer = new CborWriter();
        writer.WriteStartMap(5);
        writer.WriteInt32(1);
        writer.WriteInt32(2);
        writer.WriteInt32(3);
        writer.WriteInt32(-7);
        writer.WriteInt32(-1);
        writer.WriteInt32(1);
        writer.WriteInt32(-2);
        writer.WriteByteString(point.AsSpan(1, 32));
        writer.WriteInt32(-3);
        writer.WriteByteString(point.AsSpan(33, 32));
        writer.WriteEndMap();
        return writer.Encode();
    }
}

/// <summary>What a test attestation's authData says (by default: what <see cref="AppleTestCa.Policy"/> accepts).</summary>
internal sealed record AppleTestEvidence
{
    public string AppId { get; init; } = AppleTestCa.AppId;

    public uint Counter { get; init; }

    public bool Development { get; init; }

    /// <summary>The credential id in authData (default: the key id).</summary>
    public byte[]? CredentialId { get; init; }

    /// <summary>The P-256 point of the COSE key in authData (default: the attested key's).</summary>
    public byte[]? CredentialKey { get; init; }

    /// <summary>The nonce extension's DER instead of the right one.</summary>
    public byte[]? NonceExtension { get; init; }

    /// <summary>Whether the leaf carries no nonce extension.</summary>
    public bool OmitNonce { get; init; }
}
