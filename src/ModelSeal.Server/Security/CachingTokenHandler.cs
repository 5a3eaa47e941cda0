using System.Collections.Concurrent;
using System.Security.Claims;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace ModelSeal.Server.Security;

/// <summary>
/// The JWT handler with a cache of tokens it has already validated: clients keep their token until shortly before it
/// expires (ModelSeal.Client does), so a token is usually presented many times, and validating it again — an ECDSA
/// verification plus parsing — costs about 60–100 µs per request. A token is remembered only after a full, successful
/// validation, under its exact text; the trusted keys, issuers and audience are fixed for the life of the process, so
/// only the lifetime can change its verdict, and that is checked again on every use with the server's clock. An
/// expired entry is dropped and the token validated in full (which then fails as usual). Bounded: when full, the cache
/// starts over.
/// </summary>
internal sealed class CachingTokenHandler(TimeProvider time, int capacity) : JsonWebTokenHandler
{
    private readonly ConcurrentDictionary<string, Validated> _validated = new(StringComparer.Ordinal);
    private int _count;

    /// <summary>The longest token remembered (longer ones are validated every time).</summary>
    public const int MaxTokenLength = 4096;

    public override async Task<TokenValidationResult> ValidateTokenAsync(string token, TokenValidationParameters validationParameters)
    {
        if (token is not null && _validated.TryGetValue(token, out Validated? hit))
        {
            if (Authentication.IsWithinLifetime(time, hit.NotBefore, hit.Expires))
            {
                // A copy per request: the principal built from it may be changed by later stages.
                return new TokenValidationResult
                {
                    IsValid = true,
                    ClaimsIdentity = hit.Identity.Clone(),
                    SecurityToken = hit.Token,
                    Issuer = hit.Token.Issuer,
                    TokenType = hit.Token.Typ,
                };
            }

            _validated.TryRemove(token, out _);
        }

        TokenValidationResult result = await base.ValidateTokenAsync(token!, validationParameters).ConfigureAwait(false);
        if (result.IsValid && token!.Length <= MaxTokenLength && result.SecurityToken is JsonWebToken jwt && result.ClaimsIdentity is { } identity)
        {
            if (Interlocked.Increment(ref _count) > capacity)
            {
                _validated.Clear();
                Interlocked.Exchange(ref _count, 1);
            }

            _validated[token] = new Validated(
                jwt,
                identity.Clone(),
                jwt.ValidFrom == DateTime.MinValue ? null : jwt.ValidFrom,
                jwt.ValidTo == DateTime.MinValue ? null : jwt.ValidTo);
        }

        return result;
    }

    private sealed record Validated(JsonWebToken Token, ClaimsIdentity Identity, DateTime? NotBefore, DateTime? Expires);
}
