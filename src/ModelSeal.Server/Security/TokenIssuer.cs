using System.Security.Cryptography;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using ModelSeal.Server.Configuration;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Security;

/// <summary>
/// The tokens the server issues, signed with its token key (<see cref="SigningKeys.Token"/>, ES256; the key id is the
/// base64url SHA-256 of the 65-byte public point, as for device thumbprints).
/// </summary>
internal sealed class TokenIssuer : IDisposable
{
    private readonly ISigningKey _key;
    private readonly ECDsa _signer;
    private readonly ECDsa _verifier;
    private readonly SigningCredentials _credentials;
    private readonly JsonWebTokenHandler _handler = new() { SetDefaultTimesOnTokenCreation = false };
    private readonly ServerOptions _options;

    public TokenIssuer(SigningKeys keys, ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(keys);
        _key = keys.Token;
        _options = options;
        KeyId = _key.KeyId;
        _signer = new SigningKeyECDsa(_key);
        _verifier = ECDsa.Create(_key.PublicParameters);
        // Private, non-caching provider factories: the process-wide default caches signature providers by key id,
        // which would hand a restarted server (same key, same kid) a provider holding this instance's disposed key.
        SecurityKey = new ECDsaSecurityKey(_verifier) { KeyId = KeyId, CryptoProviderFactory = new CryptoProviderFactory { CacheSignatureProviders = false } };
        var signing = new ECDsaSecurityKey(_signer) { KeyId = KeyId, CryptoProviderFactory = new CryptoProviderFactory { CacheSignatureProviders = false } };
        _credentials = new SigningCredentials(signing, SecurityAlgorithms.EcdsaSha256);
    }

    /// <summary>The <c>kid</c> of the server's tokens.</summary>
    public string KeyId { get; }

    /// <summary>The validation key for the server's own tokens (public only).</summary>
    public ECDsaSecurityKey SecurityKey { get; }

    /// <summary>Issues a token: ES256, <c>kid</c>, claims sub, scope, lic (licence tokens), aep (admin tokens), iss, aud, iat, nbf, exp, jti.</summary>
    public string Issue(string subject, string scope, string? licenceId, DateTimeOffset now, long? adminEpoch = null)
    {
        var claims = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            [TokenClaims.Subject] = subject,
            [TokenClaims.Scope] = scope,
            [JwtRegisteredClaimNames.Jti] = System.Buffers.Text.Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(16)),
        };
        if (licenceId is not null)
        {
            claims[TokenClaims.Licence] = licenceId;
        }

        if (adminEpoch is { } epoch)
        {
            claims[TokenClaims.AdminEpoch] = epoch;
        }

        DateTime issuedAt = DateTimeOffset.FromUnixTimeSeconds(now.ToUnixTimeSeconds()).UtcDateTime;
        return _handler.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = _options.Issuer,
            Audience = _options.Audience,
            IssuedAt = issuedAt,
            NotBefore = issuedAt,
            Expires = issuedAt + _options.TokenLifetime,
            Claims = claims,
            SigningCredentials = _credentials,
        });
    }

    public void Dispose()
    {
        _signer.Dispose();
        _verifier.Dispose();
    }
}
