using System.Globalization;
using System.Numerics;
using System.Security.Cryptography;

namespace ModelSeal.Hpke;

/// <summary>P-256 public keys as HPKE serializes them: 65-byte uncompressed points (04 || X || Y), validated on import.</summary>
public static class HpkePublicKey
{
    /// <summary>The P-256 field prime p = 2^256 - 2^224 + 2^192 + 2^96 - 1.</summary>
    private static readonly BigInteger FieldPrime = BigInteger.Parse("0FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF", NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    /// <summary>The P-256 curve coefficient b (y^2 = x^3 - 3x + b).</summary>
    private static readonly BigInteger CurveB = BigInteger.Parse("05AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B", NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    /// <summary>
    /// Parses and validates a public key: 65 bytes, leading 0x04, coordinates below the field prime, a point on the
    /// P-256 curve (so not the point at infinity, which has no uncompressed encoding).
    /// </summary>
    /// <exception cref="ModelKeyException">Not a valid uncompressed P-256 point.</exception>
    public static ECDiffieHellman Import(ReadOnlySpan<byte> publicKey)
    {
        if (publicKey.Length != HpkeSuite.PublicKeySize || publicKey[0] != 0x04)
        {
            throw new ModelKeyException($"A device public key must be a {HpkeSuite.PublicKeySize}-byte uncompressed P-256 point (04 || X || Y); got {publicKey.Length} bytes{(publicKey.IsEmpty ? string.Empty : $" starting with 0x{publicKey[0]:X2}")}.");
        }

        var key = ECDiffieHellman.Create();
        try
        {
            // ImportParameters rejects coordinates that are out of range or not on the curve.
            key.ImportParameters(new ECParameters
            {
                Curve = ECCurve.NamedCurves.nistP256,
                Q = new ECPoint { X = publicKey.Slice(1, 32).ToArray(), Y = publicKey.Slice(33, 32).ToArray() },
            });
            return key;
        }
        catch (CryptographicException e)
        {
            key.Dispose();
            throw new ModelKeyException("The public key is not a point on the P-256 curve.", e);
        }
    }

    /// <summary>
    /// The checks of <see cref="Import"/> without creating a key: 65 bytes, leading 0x04, coordinates below the field
    /// prime, y^2 = x^3 - 3x + b. That is a point of the prime-order group (P-256's cofactor is 1), and not the point
    /// at infinity (b is not 0, so (0, 0) is not on the curve). For public input only: not constant-time.
    /// </summary>
    internal static bool IsValidPoint(ReadOnlySpan<byte> publicKey)
    {
        if (publicKey.Length != HpkeSuite.PublicKeySize || publicKey[0] != 0x04)
        {
            return false;
        }

        var x = new BigInteger(publicKey.Slice(1, 32), isUnsigned: true, isBigEndian: true);
        var y = new BigInteger(publicKey.Slice(33, 32), isUnsigned: true, isBigEndian: true);
        if (x >= FieldPrime || y >= FieldPrime)
        {
            return false;
        }

        BigInteger right = (((((x * x) - 3) % FieldPrime) * x) + CurveB) % FieldPrime;
        if (right.Sign < 0)
        {
            right += FieldPrime;
        }

        return y * y % FieldPrime == right;
    }

    /// <summary>
    /// A short public identifier of a public key: base64url (no padding) of SHA-256 over the 65-byte point.
    /// </summary>
    public static string Thumbprint(ReadOnlySpan<byte> publicKey) => System.Buffers.Text.Base64Url.EncodeToString(SHA256.HashData(publicKey));

    internal static byte[] Serialize(ECParameters parameters)
    {
        byte[] point = new byte[HpkeSuite.PublicKeySize];
        point[0] = 0x04;
        parameters.Q.X.AsSpan().CopyTo(point.AsSpan(1 + 32 - parameters.Q.X!.Length));
        parameters.Q.Y.AsSpan().CopyTo(point.AsSpan(1 + 64 - parameters.Q.Y!.Length));
        return point;
    }
}
