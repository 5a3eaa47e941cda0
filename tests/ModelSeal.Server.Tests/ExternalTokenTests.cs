using System.Net;
using System.Text.Json.Nodes;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;

namespace ModelSeal.Server.Tests;

/// <summary>
/// A trusted issuer's tokens are of the kind it is configured for (access tokens, typ at+jwt, or ID tokens for a
/// listed client id) and within its MaxLifetime (docs/protocol.md section 1, docs/deploy.md "Trusted issuers").
/// </summary>
public sealed class ExternalTokenTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task An_access_token_issuer_accepts_typ_at_jwt_only_unless_configured()
    {
        using var idp = new ExternalIssuer("https://idp.example", _directory.Sub("idp.json"));
        using var legacy = new ExternalIssuer("https://legacy.example", _directory.Sub("legacy.json"), kid: "legacy-1");
        await using TestServer server = await TestServer.StartAsync(o => o.TrustedIssuers =
        [
            new() { Issuer = idp.Issuer, JwksFile = idp.JwksFile },
            new() { Issuer = legacy.Issuer, JwksFile = legacy.JwksFile, TokenTypes = ["JWT", "at+jwt"] },
        ]);
        JsonObject claims = idp.Claims("user@idp", "keys", server.Now);

        await AssertAcceptedAsync(server, idp.Sign(claims));
        await AssertAcceptedAsync(server, idp.Sign(claims, typ: "application/AT+JWT"));
        await AssertRefusedAsync(server, idp.Sign(claims, typ: "JWT"));
        await AssertRefusedAsync(server, idp.Sign(claims, typ: null));
        await AssertRefusedAsync(server, idp.Sign(claims, typ: "id+jwt"));

        // An issuer whose access tokens say "JWT" (many identity providers) is configured so.
        JsonObject legacyClaims = legacy.Claims("user@legacy", "keys", server.Now);
        await AssertAcceptedAsync(server, legacy.Sign(legacyClaims, typ: "JWT"));
        await AssertAcceptedAsync(server, legacy.Sign(legacyClaims));
        await AssertRefusedAsync(server, legacy.Sign(legacyClaims, typ: null));
    }

    [Fact]
    public async Task An_ID_token_is_refused_by_an_access_token_issuer()
    {
        using var idp = new ExternalIssuer("https://idp.example", _directory.Sub("idp.json"));
        await using TestServer server = await TestServer.StartAsync(o => o.TrustedIssuers = [new() { Issuer = idp.Issuer, JwksFile = idp.JwksFile, Audiences = ["modelseal", "app-1"] }]);

        // An ID token of the same issuer, even for an audience the issuer's access tokens may carry.
        foreach (string audience in new[] { "app-1", "modelseal" })
        {
            JsonObject idToken = IdTokenClaims(idp, audience, server.Now);
            await AssertRefusedAsync(server, idp.Sign(idToken, typ: "JWT"));
            await AssertRefusedAsync(server, idp.Sign(idToken, typ: null));
        }
    }

    [Fact]
    public async Task An_ID_token_issuer_accepts_ID_tokens_for_a_configured_client_id_only()
    {
        using var oidc = new ExternalIssuer("https://accounts.example", _directory.Sub("oidc.json"));
        await using TestServer server = await TestServer.StartAsync(o => o.TrustedIssuers =
            [new() { Issuer = oidc.Issuer, JwksFile = oidc.JwksFile, TokenKind = TrustedIssuerOptions.IdToken, ClientIds = ["app-1", "app-2"] }]);
        DateTimeOffset now = server.Now;

        await AssertAcceptedAsync(server, oidc.Sign(IdTokenClaims(oidc, "app-1", now), typ: "JWT"));
        await AssertAcceptedAsync(server, oidc.Sign(IdTokenClaims(oidc, "app-2", now), typ: null));
        JsonObject withAzp = IdTokenClaims(oidc, "app-1", now);
        withAzp["aud"] = new JsonArray("app-1");
        withAzp["azp"] = "app-1";
        await AssertAcceptedAsync(server, oidc.Sign(withAzp, typ: "JWT"));

        // Not a listed client id, not only a client id, or authorised for another party.
        await AssertRefusedAsync(server, oidc.Sign(IdTokenClaims(oidc, "modelseal", now), typ: "JWT"));
        await AssertRefusedAsync(server, oidc.Sign(IdTokenClaims(oidc, "app-3", now), typ: "JWT"));
        JsonObject twoAudiences = IdTokenClaims(oidc, "app-1", now);
        twoAudiences["aud"] = new JsonArray("app-1", "app-2");
        await AssertRefusedAsync(server, oidc.Sign(twoAudiences, typ: "JWT"));
        JsonObject otherParty = IdTokenClaims(oidc, "app-1", now);
        otherParty["azp"] = "app-9";
        await AssertRefusedAsync(server, oidc.Sign(otherParty, typ: "JWT"));

        // The issuer's access tokens are not ID tokens.
        await AssertRefusedAsync(server, oidc.Sign(IdTokenClaims(oidc, "app-1", now)));
    }

    [Fact]
    public async Task A_token_living_longer_than_the_issuers_MaxLifetime_is_refused()
    {
        using var idp = new ExternalIssuer("https://idp.example", _directory.Sub("idp.json"));
        using var relaxed = new ExternalIssuer("https://relaxed.example", _directory.Sub("relaxed.json"), kid: "relaxed-1");
        await using TestServer server = await TestServer.StartAsync(o => o.TrustedIssuers =
        [
            new() { Issuer = idp.Issuer, JwksFile = idp.JwksFile },
            new() { Issuer = relaxed.Issuer, JwksFile = relaxed.JwksFile, MaxLifetime = TimeSpan.FromHours(3) },
        ]);
        long now = server.Now.ToUnixTimeSeconds();
        JsonObject Lifetime(ExternalIssuer issuer, long? iat, long? nbf, long exp)
        {
            JsonObject claims = issuer.Claims("user", "keys", server.Now);
            claims.Remove("iat");
            claims.Remove("nbf");
            if (iat is { } i)
            {
                claims["iat"] = i;
            }

            if (nbf is { } n)
            {
                claims["nbf"] = n;
            }

            claims["exp"] = exp;
            return claims;
        }

        // The default maximum is one hour, from iat (or nbf without iat).
        await AssertAcceptedAsync(server, idp.Sign(Lifetime(idp, now, now, now + 3600)));
        await AssertRefusedAsync(server, idp.Sign(Lifetime(idp, now, now, now + 3601)));
        await AssertRefusedAsync(server, idp.Sign(Lifetime(idp, now - 7200, now, now + 60)));
        await AssertAcceptedAsync(server, idp.Sign(Lifetime(idp, null, now, now + 3600)));
        await AssertRefusedAsync(server, idp.Sign(Lifetime(idp, null, now, now + 7200)));
        await AssertRefusedAsync(server, idp.Sign(Lifetime(idp, null, null, now + 60)));

        // Another issuer's maximum is its own.
        await AssertAcceptedAsync(server, relaxed.Sign(Lifetime(relaxed, now, now, now + (3 * 3600))));
        await AssertRefusedAsync(server, relaxed.Sign(Lifetime(relaxed, now, now, now + (3 * 3600) + 1)));

        // The server's own tokens are not concerned.
        await server.AdminTokenAsync();
    }

    private static JsonObject IdTokenClaims(ExternalIssuer issuer, string audience, DateTimeOffset now)
    {
        JsonObject claims = issuer.Claims("user@idp", "keys", now, audience);
        claims["nonce"] = "n-0S6_WzA2Mj";
        claims["auth_time"] = now.ToUnixTimeSeconds();
        return claims;
    }

    /// <summary>Authenticated: key release gets past the token (refused for want of a licence).</summary>
    private static async Task AssertAcceptedAsync(TestServer server, string token)
    {
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (await server.ReleaseAsync(token, "m", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "licence-revoked");
    }

    /// <summary>Refused as a token: 401 with WWW-Authenticate as for any invalid token.</summary>
    private static async Task AssertRefusedAsync(TestServer server, string token)
    {
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        Api answer = await server.ReleaseAsync(token, "m", "latest", device);
        answer.AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Equal("Bearer error=\"invalid_token\"", Assert.Single(answer.Headers.WwwAuthenticate).ToString());
    }
}
