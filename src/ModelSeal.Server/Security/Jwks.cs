using System.Security.Cryptography;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Security;

/// <summary>The server's public signing keys as JSON Web Keys (the records are in src/ModelSeal.Protocol).</summary>
internal static class Jwks
{
    private const int CoordinateSize = 32;

    /// <summary>A server signing key as a JWK for ES256 (public parameters only).</summary>
    public static PublicJwk EcP256Signing(ISigningKey key, string purpose)
    {
        ArgumentNullException.ThrowIfNull(key);
        return EcP256Signing(key.PublicParameters, key.KeyId, purpose);
    }

    /// <summary>A P-256 signing key for ES256 from its public parameters (a private <c>D</c> is ignored).</summary>
    public static PublicJwk EcP256Signing(ECParameters parameters, string kid, string purpose)
    {
        if (parameters.Q.X is not { Length: > 0 and <= CoordinateSize } x || parameters.Q.Y is not { Length: > 0 and <= CoordinateSize } y)
        {
            throw new ArgumentException("Not a P-256 public point.", nameof(parameters));
        }

        return new PublicJwk("EC", "P-256", Coordinate(x), Coordinate(y), kid, "ES256", "sig", purpose);
    }

    private static string Coordinate(byte[] value)
    {
        Span<byte> padded = stackalloc byte[CoordinateSize];
        padded.Clear();
        value.CopyTo(padded[(CoordinateSize - value.Length)..]);
        return System.Buffers.Text.Base64Url.EncodeToString(padded);
    }
}
