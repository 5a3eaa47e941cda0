using System.Security.Cryptography;

namespace ModelSeal.Hpke;

/// <summary>
/// A recipient's P-256 public key, parsed and validated once (<see cref="HpkePublicKey.Import"/>), for sealing to it
/// many times without paying the import again (about 100 µs: the on-curve and order checks). A key server keeps one
/// per known device. Thread-safe: concurrent <see cref="Hpke.Seal(HpkeRecipientKey, ReadOnlySpan{byte}, ReadOnlySpan{byte}, ReadOnlySpan{byte})"/>
/// calls may share it. Holds no secret.
/// </summary>
public sealed class HpkeRecipientKey : IDisposable
{
    private readonly ECDiffieHellman _key;
    private readonly byte[] _encoded;

    private HpkeRecipientKey(ECDiffieHellman key, byte[] encoded)
    {
        _key = key;
        _encoded = encoded;
        PublicKey = key.PublicKey;
    }

    /// <summary>The 65-byte uncompressed point.</summary>
    public ReadOnlySpan<byte> Encoded => _encoded;

    /// <summary>The key as the DH takes it.</summary>
    internal ECDiffieHellmanPublicKey PublicKey { get; }

    /// <summary>Parses and validates a 65-byte uncompressed P-256 point.</summary>
    /// <exception cref="ModelKeyException">Not a valid P-256 point.</exception>
    public static HpkeRecipientKey Import(ReadOnlySpan<byte> publicKey) => new(HpkePublicKey.Import(publicKey), publicKey.ToArray());

    /// <summary>Releases the native key handles.</summary>
    public void Dispose()
    {
        PublicKey.Dispose();
        _key.Dispose();
    }
}
