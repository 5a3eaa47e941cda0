using System.Security.Cryptography;
using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;
using ModelSeal.Server.Storage;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Security;

/// <summary>
/// The server's own token key (P-256, ES256; <c>token-signing.key</c> as PKCS#8 PEM, owner-only) and the tokens it
/// issues. The key id is the base64url SHA-256 of the 65-byte public point, as for device thumbprints.
/// </summary>
internal sealed class TokenIssuer : IDisposable
{

    private readonly ECDsa _key;
    private readonly SigningCredentials _credentials;
    private readonly JsonWebTokenHandler _handler = new() { SetDefaultTimesOnTokenCreation = false };
    private readonly ServerOptions _options;

    private TokenIssuer(ECDsa key, ServerOptions options)
    {
        _key = key;
        _options = options;
        ECParameters parameters = key.ExportParameters(includePrivateParameters: false);
        byte[] point = new byte[65];
        point[0] = 0x04;
        parameters.Q.X.AsSpan().CopyTo(point.AsSpan(1 + 32 - parameters.Q.X!.Length));
        parameters.Q.Y.AsSpan().CopyTo(point.AsSpan(1 + 64 - parameters.Q.Y!.Length));
        KeyId = HpkePublicKey.ThumbprintOf(point);
        // A private, non-caching provider factory: the process-wide default caches signature providers by key id,
        // which would hand a restarted server (same key, same kid) a provider holding this instance's disposed key.
        SecurityKey = new ECDsaSecurityKey(key) { KeyId = KeyId, CryptoProviderFactory = new CryptoProviderFactory { CacheSignatureProviders = false } };
        _credentials = new SigningCredentials(SecurityKey, SecurityAlgorithms.EcdsaSha256);
    }

    /// <summary>The <c>kid</c> of the server's tokens.</summary>
    public string KeyId { get; }

    /// <summary>The validation key for the server's own tokens.</summary>
    public ECDsaSecurityKey SecurityKey { get; }

    /// <summary>The public token key as a JWK, for the server's JWKS (<c>GET /.well-known/jwks.json</c>).</summary>
    public PublicJwk PublicKeyJwk() => Jwks.EcP256Signing(_key.ExportParameters(includePrivateParameters: false), KeyId);

    /// <summary>Loads the token key, creating it at first start.</summary>
    public static TokenIssuer LoadOrCreate(string path, ServerOptions options)
    {
        var key = ECDsa.Create();
        try
        {
            if (File.Exists(path))
            {
                byte[] pem = DataDirectory.ReadSecretFile(path);
                char[] text = Encoding.ASCII.GetChars(pem);
                try
                {
                    key.ImportFromPem(text);
                }
                catch (Exception e) when (e is ArgumentException or CryptographicException)
                {
                    throw new ServerConfigurationException($"The token signing key '{path}' is not a PEM private key; delete it to have a new one created at the next start (issued tokens then stop working).", e);
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(pem);
                    Array.Clear(text);
                }

                if (key.KeySize != 256 || key.ExportParameters(false).Curve.Oid?.Value != ECCurve.NamedCurves.nistP256.Oid.Value)
                {
                    throw new ServerConfigurationException($"The token signing key '{path}' is not a P-256 key; delete it to have a new one created at the next start.");
                }
            }
            else
            {
                key.GenerateKey(ECCurve.NamedCurves.nistP256);
                char[] text = key.ExportPkcs8PrivateKeyPem().ToCharArray();
                byte[] pem = Encoding.ASCII.GetBytes(text);
                try
                {
                    DataDirectory.WriteSecretFile(path, pem, overwrite: false);
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(pem);
                    Array.Clear(text);
                }
            }

            return new TokenIssuer(key, options);
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

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

    public void Dispose() => _key.Dispose();
}
