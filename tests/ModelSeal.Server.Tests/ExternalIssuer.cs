using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace ModelSeal.Server.Tests;

/// <summary>
/// An external token issuer the tests play: an ES256 key pair the test holds, its public key written as a JWKS file,
/// and tokens signed with it.
/// </summary>
internal sealed class ExternalIssuer : IDisposable
{
    private readonly ECDsa _key = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public ExternalIssuer(string issuer, string jwksFile, string kid = "ec-1")
    {
        Issuer = issuer;
        JwksFile = jwksFile;
        Kid = kid;
        ECParameters p = _key.ExportParameters(false);
        var jwks = new JsonObject
        {
            ["keys"] = new JsonArray(new JsonObject { ["kty"] = "EC", ["kid"] = kid, ["use"] = "sig", ["crv"] = "P-256", ["x"] = ServerClient.Base64Url(p.Q.X), ["y"] = ServerClient.Base64Url(p.Q.Y) }),
        };
        File.WriteAllText(jwksFile, jwks.ToJsonString());
    }

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
    /// A compact JWS of <paramref name="claims"/>, registered as a secret the server must not log. Typed as an access
    /// token (RFC 9068) unless <paramref name="typ"/> says otherwise (null: no <c>typ</c> header).
    /// </summary>
    public static string Sign(string alg, string kid, JsonObject claims, Func<byte[], byte[]> sign, string? typ = "at+jwt")
    {
        var header = new JsonObject { ["alg"] = alg, ["kid"] = kid };
        if (typ is not null)
        {
            header["typ"] = typ;
        }

        string signingInput = $"{ServerClient.Base64Url(Encoding.UTF8.GetBytes(header.ToJsonString()))}.{ServerClient.Base64Url(Encoding.UTF8.GetBytes(claims.ToJsonString()))}";
        string token = $"{signingInput}.{ServerClient.Base64Url(sign(Encoding.ASCII.GetBytes(signingInput)))}";
        Secrets.Add("external token", token);
        return token;
    }

    public void Dispose() => _key.Dispose();
}
