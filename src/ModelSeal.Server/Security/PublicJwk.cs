using System.Security.Cryptography;

namespace ModelSeal.Server.Security;

/// <summary>
/// A public signing key as a JSON Web Key (RFC 7517, RFC 7518 section 6.2.1) in the server's JWKS
/// (<c>GET /.well-known/jwks.json</c>, docs/protocol.md section 1). Only public members: no <c>d</c> can be set.
/// </summary>
/// <param name="Kty">The key type, <c>EC</c>.</param>
/// <param name="Crv">The curve, <c>P-256</c>.</param>
/// <param name="X">The x coordinate, base64url, 32 bytes (left-padded with zeros).</param>
/// <param name="Y">The y coordinate, base64url, 32 bytes (left-padded with zeros).</param>
/// <param name="Kid">The key id the server's JWTs carry in their header.</param>
/// <param name="Alg">The one algorithm the key is used with, <c>ES256</c>.</param>
/// <param name="Use">The use, <c>sig</c>.</param>
internal sealed record PublicJwk(string Kty, string Crv, string X, string Y, string Kid, string Alg, string Use)
{
    private const int CoordinateSize = 32;

    /// <summary>A P-256 signing key for ES256 from its public parameters (a private <c>D</c> is ignored).</summary>
    public static PublicJwk EcP256Signing(ECParameters parameters, string kid)
    {
        if (parameters.Q.X is not { Length: > 0 and <= CoordinateSize } x || parameters.Q.Y is not { Length: > 0 and <= CoordinateSize } y)
        {
            throw new ArgumentException("Not a P-256 public point.", nameof(parameters));
        }

        return new PublicJwk("EC", "P-256", Coordinate(x), Coordinate(y), kid, "ES256", "sig");
    }

    private static string Coordinate(byte[] value)
    {
        Span<byte> padded = stackalloc byte[CoordinateSize];
        padded.Clear();
        value.CopyTo(padded[(CoordinateSize - value.Length)..]);
        return System.Buffers.Text.Base64Url.EncodeToString(padded);
    }
}
