using System.Buffers.Binary;
using System.Security.Cryptography;

namespace ModelSeal;

/// <summary>
/// Constants and layout arithmetic of Cobblestone-256 (c2sp.org/chunked-encryption with AEAD_AES_256_GCM and
/// HKDF-Expand-SHA-512). See docs/format.md, section 2.
/// </summary>
internal static class Cobblestone
{
    public const int KeySize = 32;
    public const int SaltSize = 24;
    public const int CommitmentSize = 32;
    public const int NonceSize = 12;
    public const int TagSize = 16;
    public const int PrefixSize = SaltSize + CommitmentSize;
    public const int ChunkSize = 16384;
    public const int ChunkCiphertextSize = ChunkSize + TagSize;
    public const long MaxChunks = 1L << 38;
    public const long MaxPlaintextLength = (MaxChunks * ChunkSize) - 1;

    private static ReadOnlySpan<byte> Label => "c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\0"u8;

    /// <summary>Number of chunks of a message of <paramref name="plaintextLength"/> bytes (the final one is short).</summary>
    public static long ChunkCount(long plaintextLength) => (plaintextLength / ChunkSize) + 1;

    /// <summary>Exact ciphertext length, prefix included, of a message of <paramref name="plaintextLength"/> bytes.</summary>
    public static long CiphertextLength(long plaintextLength) =>
        PrefixSize + plaintextLength + (TagSize * ChunkCount(plaintextLength));

    /// <summary>Plaintext length implied by a ciphertext length; false when no message has that ciphertext length.</summary>
    public static bool TryGetPlaintextLength(long ciphertextLength, out long plaintextLength)
    {
        plaintextLength = 0;
        if (ciphertextLength < PrefixSize + TagSize)
        {
            return false;
        }

        long body = ciphertextLength - PrefixSize;
        long finalChunk = body % ChunkCiphertextSize;
        if (finalChunk < TagSize)
        {
            return false;
        }

        plaintextLength = ((body / ChunkCiphertextSize) * ChunkSize) + finalChunk - TagSize;
        return plaintextLength <= MaxPlaintextLength;
    }

    /// <summary>Plaintext size of chunk <paramref name="index"/> of a message of <paramref name="plaintextLength"/> bytes.</summary>
    public static int ChunkPlaintextSize(long plaintextLength, long index) =>
        index < ChunkCount(plaintextLength) - 1 ? ChunkSize : (int)(plaintextLength % ChunkSize);

    /// <summary>
    /// HKDF-Expand-SHA-512(PRK = key, info = label || salt || context, 76) split into AEAD key, base nonce and commitment.
    /// Composed from HMAC-SHA-512 because the BCL's HKDF.Expand refuses a PRK shorter than the hash output.
    /// </summary>
    public static void Derive(ReadOnlySpan<byte> key, ReadOnlySpan<byte> salt, ReadOnlySpan<byte> context, Span<byte> aeadKey, Span<byte> baseNonce, Span<byte> commitment)
    {
        if (key.Length != KeySize)
        {
            throw new ModelKeyException($"A Cobblestone-256 key is {KeySize} bytes; got {key.Length}.");
        }

        Span<byte> okm = stackalloc byte[2 * HMACSHA512.HashSizeInBytes];
        try
        {
            using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA512, key);
            for (byte block = 1; block <= 2; block++)
            {
                if (block == 2)
                {
                    hmac.AppendData(okm[..HMACSHA512.HashSizeInBytes]);
                }

                hmac.AppendData(Label);
                hmac.AppendData(salt);
                hmac.AppendData(context);
                hmac.AppendData([block]);
                hmac.GetHashAndReset(okm.Slice((block - 1) * HMACSHA512.HashSizeInBytes, HMACSHA512.HashSizeInBytes));
            }

            okm[..KeySize].CopyTo(aeadKey);
            okm.Slice(KeySize, NonceSize).CopyTo(baseNonce);
            okm.Slice(KeySize + NonceSize, CommitmentSize).CopyTo(commitment);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(okm);
        }
    }

    /// <summary>nonce = baseNonce XOR index (big-endian in the low-order bytes).</summary>
    public static void ChunkNonce(ReadOnlySpan<byte> baseNonce, long index, Span<byte> nonce)
    {
        baseNonce.CopyTo(nonce);
        ulong low = BinaryPrimitives.ReadUInt64BigEndian(nonce[4..]) ^ (ulong)index;
        BinaryPrimitives.WriteUInt64BigEndian(nonce[4..], low);
    }
}
