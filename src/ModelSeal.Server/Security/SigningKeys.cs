using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;
using ModelSeal.Server.MasterKeys;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Security;

/// <summary>
/// The server's two signing keys (docs/protocol.md sections 1 and 2): the <see cref="Token"/> key signs the server's
/// JWTs; the <see cref="Answer"/> key signs every key answer and key refusal (and the audit checkpoints). Both are
/// published in the JWKS under their own <c>kid</c>. Files in the data directory by default; inside the PKCS#11 token
/// when the master keys are there.
/// </summary>
internal sealed class SigningKeys : IDisposable
{
    public SigningKeys(ISigningKey token, ISigningKey answer)
    {
        Token = token;
        Answer = answer;
    }

    /// <summary>Signs the server's tokens.</summary>
    public ISigningKey Token { get; }

    /// <summary>Signs key answers, key refusals and audit checkpoints.</summary>
    public ISigningKey Answer { get; }

    /// <summary>
    /// Opens the keys where the configuration puts them, creating them at first start: with the PKCS#11 master-key
    /// provider, key pairs in that token (<see cref="Pkcs11SigningKey"/>; the data directory's key files, which an older
    /// server left, are deleted); otherwise files in the data directory (<see cref="FileSigningKey"/>).
    /// </summary>
    /// <exception cref="ServerConfigurationException">A key cannot be opened or created.</exception>
    public static SigningKeys Open(ServerOptions options, DataDirectory data, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(data);
        SigningKeys keys = MasterKeyProviders.IsPkcs11(options.MasterKey)
            ? OpenInToken(options.MasterKey)
            : Open(path => FileSigningKey.LoadOrCreate(path, "token signing key"), path => FileSigningKey.LoadOrCreate(path, "answer signing key"), data.SigningKeyPath, data.AnswerKeyPath);
        if (logger is not null)
        {
            KeyStoreLog.SigningKeyOpened(logger, PublicJwk.TokenPurpose, keys.Token.Description, keys.Token.KeyId);
            KeyStoreLog.SigningKeyOpened(logger, PublicJwk.AnswerPurpose, keys.Answer.Description, keys.Answer.KeyId);
        }

        if (MasterKeyProviders.IsPkcs11(options.MasterKey))
        {
            // Whoever copies the data directory must find no signing key there.
            foreach ((string path, string purpose) in new[] { (data.SigningKeyPath, PublicJwk.TokenPurpose), (data.AnswerKeyPath, PublicJwk.AnswerPurpose) })
            {
                if (File.Exists(path))
                {
                    File.Delete(path);
                    if (logger is not null)
                    {
                        KeyStoreLog.SigningKeyFileDeleted(logger, path, purpose);
                    }
                }
            }
        }

        return keys;
    }

    private static SigningKeys OpenInToken(MasterKeyOptions options)
    {
        using Pkcs11Token token = MasterKeyProviders.OpenToken(options);
        try
        {
            Func<string, ISigningKey> open = label => Pkcs11SigningKey.Open(token, label, options.CreateIfMissing);
            return Open(open, open, Pkcs11SigningKey.TokenKeyLabel(options.KeyLabel), Pkcs11SigningKey.AnswerKeyLabel(options.KeyLabel));
        }
        catch (CryptographicException e)
        {
            throw new ServerConfigurationException($"The PKCS#11 token '{token.Label}' could not provide the signing keys: {e.Message}", e);
        }
    }

    /// <summary>Opens the token key, then the answer key (disposing the first when the second fails).</summary>
    private static SigningKeys Open(Func<string, ISigningKey> openToken, Func<string, ISigningKey> openAnswer, string tokenName, string answerName)
    {
        ISigningKey token = openToken(tokenName);
        try
        {
            return new SigningKeys(token, openAnswer(answerName));
        }
        catch
        {
            token.Dispose();
            throw;
        }
    }

    /// <summary>The 65-byte uncompressed point of a P-256 public key.</summary>
    public static byte[] PointOf(ECParameters parameters)
    {
        byte[] point = new byte[65];
        point[0] = 0x04;
        parameters.Q.X.AsSpan().CopyTo(point.AsSpan(1 + 32 - parameters.Q.X!.Length));
        parameters.Q.Y.AsSpan().CopyTo(point.AsSpan(1 + 64 - parameters.Q.Y!.Length));
        return point;
    }

    /// <summary>The key id of a P-256 public key: base64url SHA-256 of its uncompressed point.</summary>
    public static string KeyIdOf(ECParameters parameters) => HpkePublicKey.ThumbprintOf(PointOf(parameters));

    public void Dispose()
    {
        Answer.Dispose();
        Token.Dispose();
    }
}
