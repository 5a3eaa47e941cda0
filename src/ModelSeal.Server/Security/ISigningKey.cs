using System.Security.Cryptography;

namespace ModelSeal.Server.Security;

/// <summary>
/// A P-256 signing key of the server (ES256): the token key or the answer key (<see cref="SigningKeys"/>). Its private
/// half is either an owner-only PEM file in the data directory (<see cref="FileSigningKey"/>) or a non-extractable key
/// pair inside the PKCS#11 token that holds the master keys, where it signs without ever leaving the token.
/// Implementations are thread-safe.
/// </summary>
internal interface ISigningKey : IDisposable
{
    /// <summary>The key id: base64url SHA-256 of the 65-byte uncompressed public point (as device thumbprints).</summary>
    string KeyId { get; }

    /// <summary>The public key (no private parameters).</summary>
    ECParameters PublicParameters { get; }

    /// <summary>What the key is, for logs ("file /data/token-signing.key", "pkcs11 token 'x' key 'y'"); no secrets.</summary>
    string Description { get; }

    /// <summary>Signs a SHA-256 digest: the 64-byte IEEE P1363 signature r || s.</summary>
    byte[] SignHash(ReadOnlySpan<byte> sha256);
}
