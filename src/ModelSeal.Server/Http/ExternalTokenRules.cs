using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Diagnostics;

namespace ModelSeal.Server.Http;

/// <summary>
/// What a trusted issuer's token must be besides signed, in time and for one of its audiences (docs/protocol.md section
/// 1, docs/deploy.md "Trusted issuers"): of the kind the issuer is configured for, with an accepted JOSE <c>typ</c>
/// (RFC 9068 section 2.1 and RFC 8725 section 3.11: an ID token is not accepted as an access token, nor the other way
/// round), an ID token for exactly one configured client id, and a lifetime (<c>exp</c> minus <c>iat</c>, or
/// <c>nbf</c>) within the issuer's maximum. Checked in one place, once the standard validation has passed; the
/// server's own tokens are not concerned. Every refusal is the usual 401.
/// </summary>
internal sealed class ExternalTokenRules
{
    /// <summary>The media type of RFC 9068 access tokens (<c>typ</c> <c>at+jwt</c>).</summary>
    public const string AccessTokenType = "application/at+jwt";

    /// <summary>The generic <c>typ</c> that ID tokens carry, when they carry one.</summary>
    public const string JwtType = "application/jwt";

    private ExternalTokenRules(bool idTokens, IReadOnlySet<string> types, bool untyped, TimeSpan maxLifetime)
    {
        IdTokens = idTokens;
        Types = types;
        AcceptsUntyped = untyped;
        MaxLifetime = maxLifetime;
    }

    /// <summary>True for an issuer of ID tokens, false for access tokens.</summary>
    public bool IdTokens { get; }

    /// <summary>The accepted <c>typ</c> values, as normalised media types (<see cref="TrustedIssuerOptions.MediaType"/>).</summary>
    public IReadOnlySet<string> Types { get; }

    /// <summary>Whether a token without <c>typ</c> is accepted (ID tokens, when no TokenTypes are configured).</summary>
    public bool AcceptsUntyped { get; }

    public TimeSpan MaxLifetime { get; }

    /// <summary>The rules of a (validated) issuer configuration.</summary>
    public static ExternalTokenRules From(TrustedIssuerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        bool idTokens = options.TokenKind == TrustedIssuerOptions.IdToken;
        IEnumerable<string> types = options.TokenTypes.Count > 0 ? options.TokenTypes : [idTokens ? JwtType : AccessTokenType];
        return new ExternalTokenRules(idTokens, types.Select(TrustedIssuerOptions.MediaType).ToHashSet(StringComparer.Ordinal), idTokens && options.TokenTypes.Count == 0, options.MaxLifetime);
    }

    /// <summary>The <c>aud</c> values of an issuer's tokens: its ClientIds for ID tokens, else its Audiences (default: the server's).</summary>
    public static IReadOnlyList<string> Audiences(TrustedIssuerOptions options, string defaultAudience)
    {
        ArgumentNullException.ThrowIfNull(options);
        IList<string> configured = options.TokenKind == TrustedIssuerOptions.IdToken ? options.ClientIds : options.Audiences;
        return configured.Count > 0 ? [.. configured] : [defaultAudience];
    }

    /// <summary>Adds the rules of <paramref name="trusted"/> to the token-validated event, after its own checks.</summary>
    public static void Register(JwtBearerEvents events, IReadOnlyList<TrustedIssuer> trusted)
    {
        ArgumentNullException.ThrowIfNull(events);
        var rules = trusted.ToDictionary(issuer => issuer.Issuer, issuer => issuer.Rules, StringComparer.Ordinal);
        Func<TokenValidatedContext, Task> before = events.OnTokenValidated;
        events.OnTokenValidated = async context =>
        {
            await before(context).ConfigureAwait(false);
            if (context.Result is null && context.SecurityToken is JsonWebToken token && rules.TryGetValue(token.Issuer, out ExternalTokenRules? issuer) &&
                issuer.Violation(token) is { } violation)
            {
                ServerLog.TokenRejected(context.HttpContext.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(ServerLog.Category), violation);
                context.Fail(violation);
            }
        };
    }

    /// <summary>Why <paramref name="token"/> (already validated as this issuer's) is refused, or null.</summary>
    public string? Violation(JsonWebToken token)
    {
        ArgumentNullException.ThrowIfNull(token);
        string kind = IdTokens ? "ID" : "access";
        if (string.IsNullOrEmpty(token.Typ) ? !AcceptsUntyped : !Types.Contains(TrustedIssuerOptions.MediaType(token.Typ)))
        {
            return $"the token's typ is not one accepted on this issuer's {kind} tokens";
        }

        if (IdTokens && (token.Audiences.Count() != 1 || (token.TryGetPayloadValue("azp", out string? azp) && !string.Equals(azp, token.Audiences.Single(), StringComparison.Ordinal))))
        {
            return "an ID token must have exactly one aud, a configured client id, and no other azp";
        }

        DateTime start = token.IssuedAt != DateTime.MinValue ? token.IssuedAt : token.ValidFrom;
        if (start == DateTime.MinValue)
        {
            return "the token has neither iat nor nbf, so its lifetime is unknown";
        }

        return token.ValidTo - start > MaxLifetime ? "the token's lifetime exceeds this issuer's MaxLifetime" : null;
    }
}
