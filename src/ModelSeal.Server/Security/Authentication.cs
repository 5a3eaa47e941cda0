using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.Http;

namespace ModelSeal.Server.Security;

/// <summary>
/// Bearer-token validation (docs/protocol.md section 1) and the two authorization policies. Every check is explicit:
/// issuer, audience, lifetime (30 s skew), signature by a known key named by <c>kid</c>, and an algorithm the key's
/// issuer may use (ES256 for the server's own key; what an OIDC JWKS key allows among ES256, RS256, PS256).
/// </summary>
internal static class Authentication
{
    public const string KeysPolicy = "keys";
    public const string AdminPolicy = "admin";
    public const string ScopeClaim = "scope";

    public static readonly TimeSpan ClockSkew = TimeSpan.FromSeconds(30);

    private static readonly string[] OidcAlgorithms = [SecurityAlgorithms.EcdsaSha256, SecurityAlgorithms.RsaSha256, SecurityAlgorithms.RsaSsaPssSha256];

    public static void AddModelSealAuthentication(this IServiceCollection services, ServerOptions options, OidcKeys? oidc)
    {
        // The token key is created by the container (after the data directory is locked): bound when the options are first used.
        services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer();
        services.AddOptions<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme).Configure<TokenIssuer>((jwt, issuer) => ConfigureJwt(jwt, options, issuer, oidc));
        services.AddAuthorizationBuilder()
            .SetFallbackPolicy(new AuthorizationPolicyBuilder(JwtBearerDefaults.AuthenticationScheme).RequireAuthenticatedUser().Build())
            .SetDefaultPolicy(new AuthorizationPolicyBuilder(JwtBearerDefaults.AuthenticationScheme).RequireAuthenticatedUser().Build())
            .AddPolicy(KeysPolicy, policy => policy.AddAuthenticationSchemes(JwtBearerDefaults.AuthenticationScheme).RequireAuthenticatedUser().RequireAssertion(c => HasScope(c.User, TokenIssuer.ScopeKeys)))
            .AddPolicy(AdminPolicy, policy => policy.AddAuthenticationSchemes(JwtBearerDefaults.AuthenticationScheme).RequireAuthenticatedUser().RequireAssertion(c => HasScope(c.User, TokenIssuer.ScopeAdmin)));
    }

    private static void ConfigureJwt(JwtBearerOptions jwt, ServerOptions options, TokenIssuer issuer, OidcKeys? oidc)
    {
        // Which issuer each trusted key belongs to, and which algorithms it may sign with.
        var owners = new Dictionary<SecurityKey, (string Issuer, string[] Algorithms)>(ReferenceEqualityComparer.Instance)
        {
            [issuer.SecurityKey] = (options.Issuer, [SecurityAlgorithms.EcdsaSha256]),
        };
        var keys = new List<SecurityKey> { issuer.SecurityKey };
        var issuers = new List<string> { options.Issuer };
        if (oidc is not null)
        {
            foreach ((JsonWebKey key, string[] algorithms) in oidc.Keys)
            {
                owners[key] = (oidc.Authority, algorithms);
                keys.Add(key);
            }

            issuers.Add(oidc.Authority);
        }

        string[] validAlgorithms = owners.Values.SelectMany(o => o.Algorithms).Distinct(StringComparer.Ordinal).ToArray();


        // The standard handler plus a cache of tokens it has already validated (only the lifetime is checked
        // again for those).
        jwt.TokenHandlers.Clear();
        jwt.TokenHandlers.Add(new CachingTokenHandler(options.Time, capacity: 65_536) { MapInboundClaims = false });
        jwt.MapInboundClaims = false;
        jwt.IncludeErrorDetails = false;
        jwt.SaveToken = false;
        jwt.RequireHttpsMetadata = true;
        jwt.TimeProvider = options.Time;
        jwt.TokenValidationParameters = new TokenValidationParameters
        {
            ValidateIssuer = true,
            ValidIssuers = issuers,
            ValidateAudience = true,
            ValidAudience = options.Audience,
            RequireAudience = true,
            ValidateLifetime = true,
            RequireExpirationTime = true,
            ClockSkew = ClockSkew,
            LifetimeValidator = (notBefore, expires, _, _) => IsWithinLifetime(options.Time, notBefore, expires),
            RequireSignedTokens = true,
            ValidateIssuerSigningKey = true,
            IssuerSigningKeys = keys,
            TryAllIssuerSigningKeys = false,
            ValidAlgorithms = validAlgorithms,
            IssuerSigningKeyValidator = (key, token, _) =>
                token is JsonWebToken jwtToken &&
                owners.TryGetValue(key, out var owner) &&
                string.Equals(jwtToken.Issuer, owner.Issuer, StringComparison.Ordinal) &&
                owner.Algorithms.Contains(jwtToken.Alg, StringComparer.Ordinal),
            NameClaimType = JwtRegisteredClaimNames.Sub,
            RoleClaimType = ScopeClaim,
            ValidateTokenReplay = false,
        };
        jwt.Events = new JwtBearerEvents
        {
            OnTokenValidated = context =>
            {
                if (string.IsNullOrEmpty(context.Principal?.FindFirst(JwtRegisteredClaimNames.Sub)?.Value))
                {
                    context.Fail("The token has no 'sub' claim.");
                }

                return Task.CompletedTask;
            },
            OnAuthenticationFailed = context =>
            {
                ServerLog.TokenRejected(Logger(context.HttpContext), context.Exception.GetType().Name);
                return Task.CompletedTask;
            },
            OnChallenge = async context =>
            {
                context.HandleResponse();
                bool presented = context.AuthenticateFailure is not null || context.Request.Headers.Authorization.Count > 0;
                context.Response.Headers.WWWAuthenticate = presented ? "Bearer error=\"invalid_token\"" : "Bearer";
                await Problems.WriteAsync(
                    context.HttpContext,
                    Problems.Unauthorized,
                    presented ? "The bearer token is not valid (signature, issuer, audience, lifetime or key)." : "A bearer token is required (Authorization: Bearer <token>).").ConfigureAwait(false);
            },
            OnForbidden = context => Problems.WriteAsync(context.HttpContext, Problems.Forbidden, "The token's scope does not allow this operation."),
        };
    }

    /// <summary>
    /// <c>exp</c> required; <c>nbf</c> (when present) and <c>exp</c> checked against <paramref name="time"/> with
    /// <see cref="ClockSkew"/> either side (the options' clock, so that tests can move it).
    /// </summary>
    public static bool IsWithinLifetime(TimeProvider time, DateTime? notBefore, DateTime? expires)
    {
        if (expires is null)
        {
            return false;
        }

        DateTime now = time.GetUtcNow().UtcDateTime;
        DateTime expiresUtc = expires.Value.ToUniversalTime();
        DateTime? notBeforeUtc = notBefore?.ToUniversalTime();
        return (notBeforeUtc is null || (notBeforeUtc <= expiresUtc && notBeforeUtc <= now + ClockSkew)) && expiresUtc >= now - ClockSkew;
    }

    /// <summary>True when a space-separated <c>scope</c> claim of <paramref name="user"/> contains <paramref name="scope"/>.</summary>
    public static bool HasScope(ClaimsPrincipal user, string scope) =>
        user.FindAll(ScopeClaim).Any(claim => claim.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Contains(scope, StringComparer.Ordinal));

    /// <summary>The token's <c>sub</c> (present on every authenticated request).</summary>
    public static string Subject(ClaimsPrincipal user) =>
        user.FindFirst(JwtRegisteredClaimNames.Sub)?.Value ?? throw new InvalidOperationException("An authenticated request without a subject.");

    private static ILogger Logger(HttpContext context) =>
        context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(ServerLog.Category);
}

/// <summary>The signing keys of an external OIDC issuer, read from a JWKS file (never fetched over the network).</summary>
internal sealed class OidcKeys
{
    private OidcKeys(string authority, List<(JsonWebKey, string[])> keys)
    {
        Authority = authority;
        Keys = keys;
    }

    public string Authority { get; }

    public IReadOnlyList<(JsonWebKey Key, string[] Algorithms)> Keys { get; }

    /// <summary>Reads the JWKS: keeps signing keys (use absent or "sig") with a kid that fit ES256 (P-256), RS256 or PS256.</summary>
    public static OidcKeys Load(string authority, string jwksFile)
    {
        string json;
        try
        {
            json = File.ReadAllText(jwksFile);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ServerConfigurationException($"The OIDC JWKS file '{jwksFile}' could not be read: {e.Message}", e);
        }

        JsonWebKeySet set;
        try
        {
            set = new JsonWebKeySet(json);
        }
        catch (Exception e) when (e is ArgumentException or System.Text.Json.JsonException)
        {
            throw new ServerConfigurationException($"The OIDC JWKS file '{jwksFile}' is not a JSON Web Key Set: {e.Message}", e);
        }

        var keys = new List<(JsonWebKey, string[])>();
        foreach (JsonWebKey key in set.Keys)
        {
            if (string.IsNullOrEmpty(key.Kid) || (!string.IsNullOrEmpty(key.Use) && key.Use != "sig") || key.HasPrivateKey)
            {
                continue;
            }

            string[] algorithms = key.Kty switch
            {
                "RSA" => [SecurityAlgorithms.RsaSha256, SecurityAlgorithms.RsaSsaPssSha256],
                "EC" when key.Crv == "P-256" => [SecurityAlgorithms.EcdsaSha256],
                _ => [],
            };
            if (!string.IsNullOrEmpty(key.Alg))
            {
                algorithms = algorithms.Contains(key.Alg, StringComparer.Ordinal) ? [key.Alg] : [];
            }

            if (algorithms.Length > 0)
            {
                keys.Add((key, algorithms));
            }
        }

        return keys.Count > 0
            ? new OidcKeys(authority, keys)
            : throw new ServerConfigurationException($"The OIDC JWKS file '{jwksFile}' has no usable public signing key (each needs a 'kid', and RSA or P-256 EC for RS256, PS256 or ES256).");
    }
}
