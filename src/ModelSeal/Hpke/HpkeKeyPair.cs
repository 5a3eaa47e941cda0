using System.Numerics;
using System.Security.Cryptography;

namespace ModelSeal.Hpke;

/// <summary>
/// A P-256 key pair for HPKE's DHKEM(P-256, HKDF-SHA256) in software: the recipient side (a device key, or a
/// publisher's key) as an <see cref="IHpkeKeyAgreement"/>. The private key stays inside <see cref="ECDiffieHellman"/>;
/// <see cref="ToString"/> shows only the public key's thumbprint. Thread-safe. Dispose to release it.
/// </summary>
public sealed class HpkeKeyPair : IHpkeKeyAgreement, IDisposable
{
    private static readonly BigInteger Order = BigInteger.Parse("0FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);

    private HpkeKeyPair(ECDiffieHellman key)
    {
        Key = key;
        PublicKey = HpkePublicKey.FromParameters(key.ExportParameters(includePrivateParameters: false));
    }

    /// <inheritdoc />
    public HpkePublicKey PublicKey { get; }

    internal ECDiffieHellman Key { get; }

    /// <summary>A new random key pair.</summary>
    public static HpkeKeyPair Generate() => new(ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256));

    /// <summary>Imports a 32-byte private scalar (big-endian); the public key is derived from it.</summary>
    /// <exception cref="ModelKeyException">Not a valid P-256 private key.</exception>
    public static HpkeKeyPair ImportPrivateKey(ReadOnlySpan<byte> privateKey)
    {
        if (privateKey.Length != HpkeSuite.PrivateKeySize)
        {
            throw new ModelKeyException($"A P-256 private key is {HpkeSuite.PrivateKeySize} bytes; got {privateKey.Length}.");
        }

        var scalar = new BigInteger(privateKey, isUnsigned: true, isBigEndian: true);
        if (scalar.IsZero || scalar >= Order)
        {
            throw new ModelKeyException("The P-256 private key is out of range (zero, or not below the group order).");
        }

        byte[] d = privateKey.ToArray();
        try
        {
            var key = ECDiffieHellman.Create();
            try
            {
                key.ImportParameters(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, D = d });
                return new HpkeKeyPair(key);
            }
            catch
            {
                key.Dispose();
                throw;
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(d);
        }
    }

    /// <summary>RFC 9180 DeriveKeyPair for DHKEM(P-256, HKDF-SHA256): a deterministic key pair from input keying material.</summary>
    public static HpkeKeyPair Derive(ReadOnlySpan<byte> ikm)
    {
        Span<byte> prk = stackalloc byte[32];
        Span<byte> candidate = stackalloc byte[HpkeSuite.PrivateKeySize];
        try
        {
            HpkeSuite.LabeledExtract(HpkeSuite.KemSuiteId, [], "dkp_prk"u8, ikm, prk);
            for (int counter = 0; counter < 256; counter++)
            {
                HpkeSuite.LabeledExpand(HpkeSuite.KemSuiteId, prk, "candidate"u8, [(byte)counter], candidate);
                var scalar = new BigInteger(candidate, isUnsigned: true, isBigEndian: true); // bitmask 0xFF for P-256
                if (!scalar.IsZero && scalar < Order)
                {
                    return ImportPrivateKey(candidate);
                }
            }

            throw new CryptographicException("DeriveKeyPair found no valid P-256 scalar.");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(prk);
            CryptographicOperations.ZeroMemory(candidate);
        }
    }

    /// <inheritdoc />
    public void DeriveSharedSecret(HpkePublicKey peerPublicKey, Span<byte> sharedSecret)
    {
        ArgumentNullException.ThrowIfNull(peerPublicKey);
        if (sharedSecret.Length != HpkeSuite.DhSize)
        {
            throw new ArgumentException($"The P-256 shared secret is {HpkeSuite.DhSize} bytes; the destination is {sharedSecret.Length}.", nameof(sharedSecret));
        }

        byte[] dh = Key.DeriveRawSecretAgreement(peerPublicKey.DhPublicKey);
        try
        {
            dh.CopyTo(sharedSecret);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dh);
        }
    }

    /// <summary>Exports the 32-byte private scalar. The only way out; the caller zeroes it.</summary>
    public byte[] ExportPrivateKey()
    {
        return Key.ExportParameters(includePrivateParameters: true).D!;
    }

    /// <inheritdoc />
    public override string ToString() => $"HpkeKeyPair {{ PublicKey = {PublicKey.Thumbprint} }}";

    /// <summary>Releases the private key.</summary>
    public void Dispose() => Key.Dispose();
}
