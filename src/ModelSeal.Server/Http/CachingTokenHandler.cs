using System.Collections.Concurrent;
using System.Security.Claims;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace ModelSeal.Server.Http;

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
        if (result.IsValid && result.SecurityToken is JsonWebToken validated && StrictnessViolation(validated) is { } violation)
        {
            return new TokenValidationResult { IsValid = false, Exception = new SecurityTokenMalformedException(violation) };
        }

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

    /// <summary>
    /// What the standard handler lets through and this server does not: a <c>crit</c> header (RFC 7515 section
    /// 4.1.11: this server understands no JWS extension, so a token that requires one is refused), and an
    /// <c>exp</c>, <c>nbf</c> or <c>iat</c> that is not a JSON number (RFC 7519 section 2: a NumericDate). Null when
    /// the token has neither.
    /// </summary>
    internal static string? StrictnessViolation(JsonWebToken token)
    {
        ArgumentNullException.ThrowIfNull(token);
        using (JsonDocument header = JsonDocument.Parse(System.Buffers.Text.Base64Url.DecodeFromChars(token.EncodedHeader)))
        {
            if (header.RootElement.TryGetProperty("crit", out _))
            {
                return "The token's 'crit' header names an extension this server does not understand.";
            }
        }

        using JsonDocument payload = JsonDocument.Parse(System.Buffers.Text.Base64Url.DecodeFromChars(token.EncodedPayload));
        foreach (string claim in (ReadOnlySpan<string>)["exp", "nbf", "iat"])
        {
            if (payload.RootElement.TryGetProperty(claim, out JsonElement value) && value.ValueKind != JsonValueKind.Number)
            {
                return $"The token's '{claim}' is not a number (a NumericDate).";
            }
        }

        return null;
    }

    private sealed record Validated(JsonWebToken Token, ClaimsIdentity Identity, DateTime? NotBefore, DateTime? Expires);
}
