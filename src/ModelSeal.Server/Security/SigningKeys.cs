using System.Security.Cryptography;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;

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

    /// <summary>Opens the keys where the configuration puts them, creating them at first start.</summary>
    public static SigningKeys Open(ServerOptions options, DataDirectory data)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(data);
        FileSigningKey token = FileSigningKey.LoadOrCreate(data.SigningKeyPath, "token signing key");
        try
        {
            return new SigningKeys(token, FileSigningKey.LoadOrCreate(data.AnswerKeyPath, "answer signing key"));
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
