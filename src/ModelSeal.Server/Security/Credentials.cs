using System.Security.Cryptography;
using System.Text;

namespace ModelSeal.Server.Security;

/// <summary>Credentials (licence and admin): random, shown once, stored only as SHA-256 hashes, compared in constant time.</summary>
internal static class Credentials
{
    private static readonly byte[] NoCredential = new byte[32];

    /// <summary>A new credential: base64url of 32 random bytes.</summary>
    public static string New() => System.Buffers.Text.Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));

    /// <summary>SHA-256 of a credential's UTF-8 bytes.</summary>
    public static byte[] Hash(string credential) => SHA256.HashData(Encoding.UTF8.GetBytes(credential));

    /// <summary>True when <paramref name="credential"/> hashes to <paramref name="hash"/> (constant time; a null hash never matches).</summary>
    public static bool Matches(string credential, byte[]? hash) =>
        CryptographicOperations.FixedTimeEquals(Hash(credential), hash ?? NoCredential) && hash is not null;
}
