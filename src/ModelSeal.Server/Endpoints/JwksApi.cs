using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using ModelSeal.Server.Security;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Endpoints;

/// <summary>
/// <c>GET /.well-known/jwks.json</c> (docs/protocol.md section 1): the public keys that verify what the server signs, as a
/// JWK Set (RFC 7517), so that anyone can check a server-issued token without trusting the server's own code.
/// </summary>
internal static class JwksApi
{
    public const string Path = "/.well-known/jwks.json";

    /// <summary>
    /// Public keys may be cached, unlike every other answer (no-store): five minutes bounds how long a verifier keeps a
    /// replaced token key (which already invalidates every token it signed).
    /// </summary>
    public const string CacheControl = "public, max-age=300";

    public static IEndpointRouteBuilder MapJwksApi(this IEndpointRouteBuilder app)
    {
        app.MapGet(Path, Get)
            .AllowAnonymous()
            .WithTags("Discovery")
            .WithName("GetJwks")
            .WithSummary("The public keys of the server's signatures (its token key and its answer key) as a JWK Set.");
        return app;
    }

    internal static Ok<JwksResponse> Get(HttpContext http, SigningKeys keys)
    {
        http.Response.Headers.CacheControl = CacheControl;
        return TypedResults.Ok(KeySet(keys));
    }

    /// <summary>The published keys: the token key and the answer key, each under its own <c>kid</c> and purpose.</summary>
    internal static JwksResponse KeySet(SigningKeys keys) =>
        new([Jwks.EcP256Signing(keys.Token, PublicJwk.TokenPurpose), Jwks.EcP256Signing(keys.Answer, PublicJwk.AnswerPurpose)]);
}
