using System.Globalization;
using System.Numerics;
using System.Security.Cryptography;

namespace ModelSeal.Hpke;

/// <summary>
/// A P-256 public key as HPKE serializes it: a 65-byte uncompressed point (04 || X || Y), validated on import. The one
/// public-key type of the library: a device's or publisher's key to seal to (<see cref="Hpke.Seal"/>,
/// <see cref="KeyRelease.Seal"/>), the public half of an <see cref="IHpkeKeyAgreement"/>, and the peer of its key
/// agreement. Immutable and thread-safe; equal when the encoded points are equal. Holds no secret.
/// </summary>
/// <remarks>
/// Seal to one instance many times (a key server keeps one per known device): the key is imported into the platform's
/// ECDH implementation once, on the first seal, and reused by concurrent seals.
/// </remarks>
public sealed class HpkePublicKey : IEquatable<HpkePublicKey>
{
    /// <summary>The P-256 field prime p = 2^256 - 2^224 + 2^192 + 2^96 - 1.</summary>
    private static readonly BigInteger FieldPrime = BigInteger.Parse("0FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF", NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    /// <summary>The P-256 curve coefficient b (y^2 = x^3 - 3x + b).</summary>
    private static readonly BigInteger CurveB = BigInteger.Parse("05AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B", NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    private readonly byte[] _encoded;
    private string? _thumbprint;
    private DhKey? _dhKey;

    /// <summary>Wraps a point already known to be valid (see <see cref="IsValidPoint"/>); takes ownership of the array.</summary>
    private HpkePublicKey(byte[] encoded) => _encoded = encoded;

    /// <summary>The 65-byte uncompressed point (04 || X || Y).</summary>
    public ReadOnlyMemory<byte> Encoded => _encoded;

    /// <summary>
    /// A short public identifier of the key: base64url (no padding) of SHA-256 over the 65-byte point, 43 characters
    /// (docs/protocol.md: the key server's device thumbprints).
    /// </summary>
    public string Thumbprint => _thumbprint ??= ThumbprintOf(_encoded);

    /// <summary>The key as the platform's ECDH takes it, imported on first use and kept (thread-safe).</summary>
    internal ECDiffieHellmanPublicKey DhPublicKey => (_dhKey ?? CreateDhKey()).PublicKey;

    /// <summary>
    /// Parses and validates a public key: 65 bytes, leading 0x04, coordinates below the field prime, a point on the
    /// P-256 curve (so not the point at infinity, which has no uncompressed encoding).
    /// </summary>
    /// <param name="encoded">The uncompressed point (04 || X || Y), as in the key server's <c>devicePublicKey</c>.</param>
    /// <exception cref="ModelKeyException">Not a valid uncompressed P-256 point; the message says what is wrong.</exception>
    public static HpkePublicKey Import(ReadOnlySpan<byte> encoded)
    {
        if (encoded.Length != HpkeSuite.PublicKeySize || encoded[0] != 0x04)
        {
            throw new ModelKeyException($"An HPKE public key must be a {HpkeSuite.PublicKeySize}-byte uncompressed P-256 point (04 || X || Y); got {encoded.Length} bytes{(encoded.IsEmpty ? string.Empty : $" starting with 0x{encoded[0]:X2}")}. Pass the key's uncompressed encoding, not a compressed point, a DER/PEM structure or a private key.");
        }

        if (!IsValidPoint(encoded))
        {
            throw new ModelKeyException("The public key is not a point on the P-256 curve (a coordinate is not below the field prime, or y^2 != x^3 - 3x + b): it is corrupted, truncated and padded, or a key of another curve.");
        }

        return new HpkePublicKey(encoded.ToArray());
    }

    /// <inheritdoc />
    public bool Equals(HpkePublicKey? other) => other is not null && _encoded.AsSpan().SequenceEqual(other._encoded);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as HpkePublicKey);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = default(HashCode);
        hash.AddBytes(_encoded);
        return hash.ToHashCode();
    }

    /// <summary>The <see cref="Thumbprint"/>.</summary>
    public override string ToString() => Thumbprint;

    /// <summary>
    /// The checks of <see cref="Import"/>: 65 bytes, leading 0x04, coordinates below the field prime,
    /// y^2 = x^3 - 3x + b. That is a point of the prime-order group (P-256's cofactor is 1), and not the point at
    /// infinity (b is not 0, so (0, 0) is not on the curve). For public input only: not constant-time.
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
    /// <see cref="Thumbprint"/> of bytes that need not be a valid key (the key server names a refused device key, and
    /// its token-signing key, the same way).
    /// </summary>
    internal static string ThumbprintOf(ReadOnlySpan<byte> encoded) => System.Buffers.Text.Base64Url.EncodeToString(SHA256.HashData(encoded));

    /// <summary>A point that <see cref="IsValidPoint"/> accepted (HPKE's encapsulated key), without checking it again.</summary>
    internal static HpkePublicKey FromValidPoint(ReadOnlySpan<byte> encoded) => new(encoded.ToArray());

    /// <summary>The public key of a key pair (<see cref="HpkeKeyPair"/>): a valid point by construction.</summary>
    internal static HpkePublicKey FromParameters(ECParameters parameters)
    {
        byte[] point = new byte[HpkeSuite.PublicKeySize];
        point[0] = 0x04;
        parameters.Q.X.AsSpan().CopyTo(point.AsSpan(1 + 32 - parameters.Q.X!.Length));
        parameters.Q.Y.AsSpan().CopyTo(point.AsSpan(1 + 64 - parameters.Q.Y!.Length));
        return new HpkePublicKey(point);
    }

    private DhKey CreateDhKey()
    {
        var key = ECDiffieHellman.Create();
        try
        {
            // ImportParameters checks the point again (range, on the curve); IsValidPoint accepted it already.
            key.ImportParameters(new ECParameters
            {
                Curve = ECCurve.NamedCurves.nistP256,
                Q = new ECPoint { X = _encoded[1..33], Y = _encoded[33..] },
            });
        }
        catch (CryptographicException e)
        {
            key.Dispose();
            throw new ModelKeyException("The public key is not a point on the P-256 curve.", e);
        }

        var created = new DhKey(key, key.PublicKey);

        // Concurrent first uses may both import; one wins, the other's handles are released at once.
        DhKey? existing = Interlocked.CompareExchange(ref _dhKey, created, null);
        if (existing is null)
        {
            return created;
        }

        created.PublicKey.Dispose();
        created.Key.Dispose();
        return existing;
    }

    /// <summary>
    /// The imported key and its public half as <see cref="ECDiffieHellman.DeriveRawSecretAgreement"/> takes it. Never
    /// disposed while the <see cref="HpkePublicKey"/> lives (it is immutable and shared); the handles are released by
    /// their finalizers.
    /// </summary>
    private sealed record DhKey(ECDiffieHellman Key, ECDiffieHellmanPublicKey PublicKey);
}
