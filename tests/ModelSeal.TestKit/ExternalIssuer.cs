using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using static System.Buffers.Text.Base64Url;

namespace ModelSeal.TestKit;

/// <summary>
/// An external token issuer the tests play: an ES256 key pair the test holds, its public key written as a JWKS file
/// (for <c>TrustedIssuers:N:JwksFile</c>), and tokens signed with it: what makes a user of an entitlement rule.
/// </summary>
public sealed class ExternalIssuer : IDisposable
{
    private static readonly ConcurrentQueue<string> IssuedTokens = new();
    private readonly ECDsa _key = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public ExternalIssuer(string issuer, string jwksFile, string kid = "ec-1")
    {
        Issuer = issuer;
        JwksFile = jwksFile;
        Kid = kid;
        ECParameters p = _key.ExportParameters(false);
        var jwks = new JsonObject
        {
            ["keys"] = new JsonArray(new JsonObject { ["kty"] = "EC", ["kid"] = kid, ["use"] = "sig", ["crv"] = "P-256", ["x"] = EncodeToString(p.Q.X), ["y"] = EncodeToString(p.Q.Y) }),
        };
        File.WriteAllText(jwksFile, jwks.ToJsonString());
    }

    /// <summary>Every token signed so far (secrets: the server's logs are checked never to hold one).</summary>
    public static IReadOnlyCollection<string> Issued => IssuedTokens;

    public string Issuer { get; }

    public string JwksFile { get; }

    public string Kid { get; }

    /// <summary>An access token (<c>typ</c> <c>at+jwt</c>) of this issuer, valid for five minutes from <paramref name="now"/>.</summary>
    public string Token(string subject, string scope, DateTimeOffset now, string audience = "modelseal") =>
        Sign(Claims(subject, scope, now, audience));

    /// <summary>The claims of <see cref="Token"/>, for a test to change before signing them.</summary>
    public JsonObject Claims(string subject, string scope, DateTimeOffset now, string audience = "modelseal")
    {
        long t = now.ToUnixTimeSeconds();
        return new JsonObject { ["iss"] = Issuer, ["aud"] = audience, ["sub"] = subject, ["scope"] = scope, ["iat"] = t, ["nbf"] = t, ["exp"] = t + 300 };
    }

    /// <summary>A token of this issuer with these claims and header <c>typ</c> (none when null).</summary>
    public string Sign(JsonObject claims, string? typ = "at+jwt") =>
        Sign("ES256", Kid, claims, data => _key.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation), typ);

    /// <summary>
    /// A compact JWS of <paramref name="claims"/>, kept in <see cref="Issued"/> (a secret the server must not log). Typed as an access
    /// token (RFC 9068) unless <paramref name="typ"/> says otherwise (null: no <c>typ</c> header).
    /// </summary>
    public static string Sign(string alg, string kid, JsonObject claims, Func<byte[], byte[]> sign, string? typ = "at+jwt")
    {
        var header = new JsonObject { ["alg"] = alg, ["kid"] = kid };
        if (typ is not null)
        {
            header["typ"] = typ;
        }

        ArgumentNullException.ThrowIfNull(claims);
        ArgumentNullException.ThrowIfNull(sign);
        string signingInput = $"{EncodeToString(Encoding.UTF8.GetBytes(header.ToJsonString()))}.{EncodeToString(Encoding.UTF8.GetBytes(claims.ToJsonString()))}";
        string token = $"{signingInput}.{EncodeToString(sign(Encoding.ASCII.GetBytes(signingInput)))}";
        IssuedTokens.Enqueue(token);
        return token;
    }

    public void Dispose() => _key.Dispose();
}
