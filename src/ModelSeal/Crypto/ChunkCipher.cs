using System.Security.Cryptography;

namespace ModelSeal;

/// <summary>
/// The per-message AEAD key and base nonce of one Cobblestone-256 message, held in pinned memory and zeroed on
/// dispose. Encrypts and decrypts single chunks; callers create one <see cref="AesGcm"/> per thread with
/// <see cref="CreateAead"/> because AesGcm instances are not thread-safe.
/// </summary>
internal sealed class ChunkCipher : IDisposable
{
    private readonly byte[] _secret = GC.AllocateArray<byte>(Cobblestone.KeySize + Cobblestone.NonceSize, pinned: true);
    private bool _disposed;

    private ChunkCipher()
    {
    }

    private Span<byte> AeadKey => _secret.AsSpan(0, Cobblestone.KeySize);

    private Span<byte> BaseNonce => _secret.AsSpan(Cobblestone.KeySize, Cobblestone.NonceSize);

    /// <summary>
    /// Derives the message keys from the 56-byte prefix (salt || commitment) and checks the commitment in constant
    /// time before anything is decrypted.
    /// </summary>
    /// <exception cref="SealedModelAuthenticationException">The commitment does not match (wrong key or context, or altered prefix).</exception>
    public static ChunkCipher ForDecryption(ReadOnlySpan<byte> key, ReadOnlySpan<byte> context, ReadOnlySpan<byte> prefix)
    {
        var cipher = new ChunkCipher();
        Span<byte> commitment = stackalloc byte[Cobblestone.CommitmentSize];
        Cobblestone.Derive(key, prefix[..Cobblestone.SaltSize], context, cipher.AeadKey, cipher.BaseNonce, commitment);
        if (!CryptographicOperations.FixedTimeEquals(commitment, prefix.Slice(Cobblestone.SaltSize, Cobblestone.CommitmentSize)))
        {
            cipher.Dispose();
            throw new SealedModelAuthenticationException();
        }

        return cipher;
    }

    /// <summary>Derives the message keys for a fresh salt and writes salt || commitment into <paramref name="prefix"/>.</summary>
    public static ChunkCipher ForEncryption(ReadOnlySpan<byte> key, ReadOnlySpan<byte> context, ReadOnlySpan<byte> salt, Span<byte> prefix)
    {
        var cipher = new ChunkCipher();
        salt.CopyTo(prefix);
        Cobblestone.Derive(key, salt, context, cipher.AeadKey, cipher.BaseNonce, prefix.Slice(Cobblestone.SaltSize, Cobblestone.CommitmentSize));
        return cipher;
    }

    /// <summary>Raw mode: AEAD key and base nonce given directly (test vectors only).</summary>
    public static ChunkCipher FromRaw(ReadOnlySpan<byte> aeadKey, ReadOnlySpan<byte> baseNonce)
    {
        var cipher = new ChunkCipher();
        aeadKey.CopyTo(cipher.AeadKey);
        baseNonce.CopyTo(cipher.BaseNonce);
        return cipher;
    }

    public AesGcm CreateAead()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new AesGcm(AeadKey, Cobblestone.TagSize);
    }

    /// <summary>Encrypts chunk <paramref name="index"/>; <paramref name="ciphertext"/> is plaintext length + 16 (tag last).</summary>
    public void Encrypt(AesGcm aead, long index, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext)
    {
        Span<byte> nonce = stackalloc byte[Cobblestone.NonceSize];
        Cobblestone.ChunkNonce(BaseNonce, index, nonce);
        aead.Encrypt(nonce, plaintext, ciphertext[..plaintext.Length], ciphertext.Slice(plaintext.Length, Cobblestone.TagSize));
    }

    /// <summary>
    /// Decrypts chunk <paramref name="index"/> (ciphertext then 16-byte tag) into <paramref name="plaintext"/>.
    /// Returns false on a tag mismatch, in which case <paramref name="plaintext"/> has been zeroed.
    /// </summary>
    public bool TryDecrypt(AesGcm aead, long index, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext)
    {
        if (ciphertext.Length < Cobblestone.TagSize || ciphertext.Length - Cobblestone.TagSize != plaintext.Length)
        {
            return false;
        }

        Span<byte> nonce = stackalloc byte[Cobblestone.NonceSize];
        Cobblestone.ChunkNonce(BaseNonce, index, nonce);
        try
        {
            aead.Decrypt(nonce, ciphertext[..plaintext.Length], ciphertext[plaintext.Length..], plaintext);
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            CryptographicOperations.ZeroMemory(plaintext);
            return false;
        }
    }

    public void Dispose()
    {
        _disposed = true;
        CryptographicOperations.ZeroMemory(_secret);
    }
}
