using System.Collections.Concurrent;
using System.Security.Claims;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace ModelSeal.Server.Http;

/// <summary>
/// The JWT handler with a cache of tokens it has already validated: clients keep their token until shortly before it
/// expires (ModelSeal.Client does), so a token is usually presented many times, and validating it again — an ECDSA
/// verification plus parsing — costs about 60–100 µs per request. A token is remembered only after a full, successful
/// validation, under its exact text; the issuers and audiences are fixed for the life of the process, so only the
/// lifetime and — for an issuer whose keys are discovered and may change — the key that signed it can change its
/// verdict: both are checked again on every use (the lifetime with the server's clock). An expired entry, or one whose
/// key its issuer no longer publishes, is dropped and the token validated in full. Bounded: when full, the cache starts
/// over.
/// <para>
/// A token that fails for want of its key, from an issuer whose keys are discovered, has them fetched again
/// (<see cref="TrustedKeys.RefreshForUnknownKeyAsync"/>, rate-limited) and is validated once more if its <c>kid</c> has
/// appeared: the first token signed with a key the issuer just rotated in is accepted.
/// </para>
/// </summary>
internal sealed class CachingTokenHandler(TimeProvider time, int capacity, TrustedKeys keys) : JsonWebTokenHandler
{
    private readonly ConcurrentDictionary<string, Validated> _validated = new(StringComparer.Ordinal);
    private int _count;

    /// <summary>Where unknown signing keys of discovered issuers are reported (the server's log once it runs).</summary>
    public ILogger Logger { get; init; } = NullLogger.Instance;

    /// <summary>The longest token remembered (longer ones are validated every time).</summary>
    public const int MaxTokenLength = 4096;

    public override async Task<TokenValidationResult> ValidateTokenAsync(string token, TokenValidationParameters validationParameters)
    {
        if (token is not null && _validated.TryGetValue(token, out Validated? hit))
        {
            if (Authentication.IsWithinLifetime(time, hit.NotBefore, hit.Expires) && keys.IsCurrent(hit.Token.SigningKey, hit.Token.Issuer))
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
        if (!result.IsValid && result.Exception is SecurityTokenSignatureKeyNotFoundException && token is not null &&
            await keys.RefreshForUnknownKeyAsync(token, Logger).ConfigureAwait(false))
        {
            result = await base.ValidateTokenAsync(token, validationParameters).ConfigureAwait(false);
        }

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
    /// 4.1.11: this server understands no JWS extension, so a token that requires one is refused), an
    /// <c>exp</c>, <c>nbf</c> or <c>iat</c> that is not a JSON number (RFC 7519 section 2: a NumericDate), an
    /// <c>iss</c>, <c>sub</c>, <c>scope</c> or <c>azp</c> that is not a string, and an <c>aud</c> that is neither a
    /// string nor an array of strings (RFC 7519 section 4.1). Null when the token has none of these.
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

        // Claims the server reads as text: a number or an object in their place is refused, never converted (a 'sub' of
        // 123 is not the subject "123"), so that no later stage meets a type it does not expect.
        foreach (string claim in (ReadOnlySpan<string>)["iss", "sub", "scope", "azp"])
        {
            if (payload.RootElement.TryGetProperty(claim, out JsonElement value) && value.ValueKind != JsonValueKind.String)
            {
                return $"The token's '{claim}' is not a string.";
            }
        }

        if (payload.RootElement.TryGetProperty("aud", out JsonElement audience) && audience.ValueKind != JsonValueKind.String &&
            (audience.ValueKind != JsonValueKind.Array || audience.EnumerateArray().Any(item => item.ValueKind != JsonValueKind.String)))
        {
            return "The token's 'aud' is neither a string nor an array of strings.";
        }

        return null;
    }

    private sealed record Validated(JsonWebToken Token, ClaimsIdentity Identity, DateTime? NotBefore, DateTime? Expires);
}
