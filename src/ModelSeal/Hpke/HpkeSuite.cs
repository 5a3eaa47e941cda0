using System.Buffers.Binary;
using System.Security.Cryptography;

namespace ModelSeal.Hpke;

/// <summary>
/// The one HPKE suite ModelSeal uses (RFC 9180): DHKEM(P-256, HKDF-SHA256) 0x0010, HKDF-SHA256 0x0001,
/// AES-256-GCM 0x0002, base mode. Fixed, never negotiated.
/// </summary>
internal static class HpkeSuite
{
    public const ushort KemId = 0x0010;
    public const ushort KdfId = 0x0001;
    public const ushort AeadId = 0x0002;
    public const int PublicKeySize = 65;
    public const int PrivateKeySize = 32;
    public const int SecretSize = 32;
    public const int DhSize = 32; // Ndh: the x-coordinate of the ECDH point
    public const int KeySize = 32;
    public const int NonceSize = 12;
    public const int TagSize = 16;
    public const int HashSize = 32;

    /// <summary>"KEM" || I2OSP(kem_id, 2).</summary>
    public static ReadOnlySpan<byte> KemSuiteId => [(byte)'K', (byte)'E', (byte)'M', 0x00, 0x10];

    /// <summary>"HPKE" || I2OSP(kem_id, 2) || I2OSP(kdf_id, 2) || I2OSP(aead_id, 2).</summary>
    public static ReadOnlySpan<byte> HpkeSuiteId => [(byte)'H', (byte)'P', (byte)'K', (byte)'E', 0x00, 0x10, 0x00, 0x01, 0x00, 0x02];

    private static ReadOnlySpan<byte> Version => "HPKE-v1"u8;

    /// <summary>LabeledExtract(salt, label, ikm) = HKDF-Extract(salt, "HPKE-v1" || suite_id || label || ikm).</summary>
    public static void LabeledExtract(ReadOnlySpan<byte> suiteId, ReadOnlySpan<byte> salt, ReadOnlySpan<byte> label, ReadOnlySpan<byte> ikm, Span<byte> prk)
    {
        byte[] labeled = new byte[Version.Length + suiteId.Length + label.Length + ikm.Length];
        try
        {
            Concat(labeled, Version, suiteId, label, ikm);
            HKDF.Extract(HashAlgorithmName.SHA256, labeled, salt, prk);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(labeled);
        }
    }

    /// <summary>LabeledExpand(prk, label, info, L) = HKDF-Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info, L).</summary>
    public static void LabeledExpand(ReadOnlySpan<byte> suiteId, ReadOnlySpan<byte> prk, ReadOnlySpan<byte> label, ReadOnlySpan<byte> info, Span<byte> output)
    {
        if (output.Length > ushort.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(output), "HPKE expands at most 65535 bytes.");
        }

        byte[] labeled = new byte[2 + Version.Length + suiteId.Length + label.Length + info.Length];
        BinaryPrimitives.WriteUInt16BigEndian(labeled, (ushort)output.Length);
        Concat(labeled.AsSpan(2), Version, suiteId, label, info);
        HKDF.Expand(HashAlgorithmName.SHA256, prk, output, labeled);
    }

    private static void Concat(Span<byte> destination, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, ReadOnlySpan<byte> c, ReadOnlySpan<byte> d)
    {
        a.CopyTo(destination);
        b.CopyTo(destination[a.Length..]);
        c.CopyTo(destination[(a.Length + b.Length)..]);
        d.CopyTo(destination[(a.Length + b.Length + c.Length)..]);
    }
}
