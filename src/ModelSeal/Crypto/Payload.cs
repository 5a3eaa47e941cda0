using System.Buffers;
using System.Security.Cryptography;

namespace ModelSeal.Crypto;

/// <summary>
/// Cobblestone-256 messages in streams, for a given key and context. The container passes its header bytes as the
/// context; the Wycheproof vector tests call the same functions with the vectors' contexts.
/// </summary>
internal static class Payload
{
    /// <summary>Reads salt and commitment and checks the commitment; a short prefix is an authentication failure.</summary>
    public static async Task<ChunkCipher> OpenAsync(Stream source, ModelKey key, byte[] context, CancellationToken cancellationToken)
    {
        byte[] prefix = new byte[Cobblestone.PrefixSize];
        int read = await source.ReadAtLeastAsync(prefix, prefix.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        return read == prefix.Length
            ? ChunkCipher.ForDecryption(key.Bytes, context, prefix)
            : throw new SealedModelAuthenticationException();
    }

    /// <summary>
    /// Decrypts a whole message of <paramref name="length"/> bytes into a new pinned array. On any failure the array is
    /// zeroed and dropped, and the exception propagates: the caller gets all of the plaintext or none of it.
    /// </summary>
    public static async Task<byte[]> DecryptAsync(Stream source, ModelKey key, byte[] context, long length, int parallelism, IProgress<ModelSealProgress>? progress, CancellationToken cancellationToken)
    {
        if (length > Array.MaxLength)
        {
            throw new NotSupportedException(
                $"The model is {length} bytes; whole-model decryption holds at most {Array.MaxLength} bytes. Use SealedModel.OpenReadAsync to stream it.");
        }

        using ChunkCipher cipher = await OpenAsync(source, key, context, cancellationToken).ConfigureAwait(false);
        byte[] plaintext = GC.AllocateUninitializedArray<byte>((int)length, pinned: true);
        try
        {
            var sink = new ChunkSink.Buffer(plaintext);
            await ChunkBatchDecryptor.DecryptAsync(source, cipher, length, sink, parallelism, progress, cancellationToken).ConfigureAwait(false);
            return plaintext;
        }
        catch
        {
            CryptographicOperations.ZeroMemory(plaintext);
            throw;
        }
    }

    /// <summary>
    /// Decrypts a whole message that is in memory (<paramref name="payload"/> = prefix and chunks, nothing else) into a
    /// new pinned array, all or nothing, like <see cref="DecryptAsync"/> but without reading or copying the ciphertext.
    /// </summary>
    public static byte[] DecryptInMemory(ReadOnlyMemory<byte> payload, ModelKey key, byte[] context, long length, int parallelism, CancellationToken cancellationToken)
    {
        // The payload must have exactly the length the plaintext length implies: checked before anything is allocated.
        if (payload.Length != Cobblestone.CiphertextLength(length))
        {
            throw new SealedModelAuthenticationException();
        }

        if (length > Array.MaxLength)
        {
            throw new NotSupportedException(
                $"The model is {length} bytes; whole-model decryption holds at most {Array.MaxLength} bytes. Use SealedModel.OpenReadAsync to stream it.");
        }

        using ChunkCipher cipher = ChunkCipher.ForDecryption(key.Bytes, context, payload.Span[..Cobblestone.PrefixSize]);
        byte[] plaintext = GC.AllocateUninitializedArray<byte>((int)length, pinned: true);
        try
        {
            ChunkBatchDecryptor.DecryptInMemory(payload[Cobblestone.PrefixSize..], cipher, length, new ChunkSink.Buffer(plaintext), parallelism, cancellationToken);
            return plaintext;
        }
        catch
        {
            CryptographicOperations.ZeroMemory(plaintext);
            throw;
        }
    }

    /// <summary>Authenticates every chunk of a message of <paramref name="length"/> bytes, keeping no plaintext.</summary>
    public static async Task VerifyAsync(Stream source, ModelKey key, byte[] context, long length, int parallelism, IProgress<ModelSealProgress>? progress, CancellationToken cancellationToken)
    {
        using ChunkCipher cipher = await OpenAsync(source, key, context, cancellationToken).ConfigureAwait(false);
        using var sink = new ChunkSink.Discard(Math.Clamp(parallelism, 1, ChunkBatchDecryptor.ChunksPerBatch));
        await ChunkBatchDecryptor.DecryptAsync(source, cipher, length, sink, parallelism, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Encrypts exactly <paramref name="length"/> bytes from <paramref name="source"/> to <paramref name="destination"/>
    /// (prefix, then chunks), with the given salt. The source must hold exactly that many bytes.
    /// </summary>
    public static async Task EncryptAsync(Stream source, long length, Stream destination, ModelKey key, byte[] context, byte[] salt, IProgress<ModelSealProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, Cobblestone.MaxPlaintextLength);
        byte[] prefix = new byte[Cobblestone.PrefixSize];
        using ChunkCipher cipher = ChunkCipher.ForEncryption(key.Bytes, context, salt, prefix);
        await destination.WriteAsync(prefix, cancellationToken).ConfigureAwait(false);

        const int batchChunks = ChunkBatchDecryptor.ChunksPerBatch;
        byte[] plaintext = ArrayPool<byte>.Shared.Rent(batchChunks * Cobblestone.ChunkSize);
        byte[] ciphertext = ArrayPool<byte>.Shared.Rent(batchChunks * Cobblestone.ChunkCiphertextSize);
        using AesGcm aead = cipher.CreateAead();
        try
        {
            long chunkCount = Cobblestone.ChunkCount(length);
            for (long first = 0; first < chunkCount; first += batchChunks)
            {
                int chunks = (int)Math.Min(batchChunks, chunkCount - first);
                long batchStart = first * Cobblestone.ChunkSize;
                int plainBytes = (int)Math.Min((long)chunks * Cobblestone.ChunkSize, length - batchStart);
                int read = await source.ReadAtLeastAsync(plaintext.AsMemory(0, plainBytes), plainBytes, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
                if (read < plainBytes)
                {
                    throw new IOException($"The model ended after {batchStart + read} bytes, but {length} were expected; was it changed while being sealed?");
                }

                int written = EncryptBatch(cipher, aead, plaintext.AsSpan(0, plainBytes), first, chunks, length, ciphertext);
                await destination.WriteAsync(ciphertext.AsMemory(0, written), cancellationToken).ConfigureAwait(false);
                progress?.Report(new ModelSealProgress(batchStart + plainBytes, length));
            }

            if (await source.ReadAsync(plaintext.AsMemory(0, 1), cancellationToken).ConfigureAwait(false) != 0)
            {
                throw new IOException($"The model is longer than the {length} bytes expected; was it changed while being sealed?");
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
            ArrayPool<byte>.Shared.Return(plaintext);
            ArrayPool<byte>.Shared.Return(ciphertext);
        }
    }

    private static int EncryptBatch(ChunkCipher cipher, AesGcm aead, ReadOnlySpan<byte> plaintext, long firstChunk, int chunks, long length, Span<byte> ciphertext)
    {
        int written = 0;
        for (int i = 0; i < chunks; i++)
        {
            int size = Cobblestone.ChunkPlaintextSize(length, firstChunk + i);
            cipher.Encrypt(aead, firstChunk + i, plaintext.Slice(i * Cobblestone.ChunkSize, size), ciphertext.Slice(written, size + Cobblestone.TagSize));
            written += size + Cobblestone.TagSize;
        }

        return written;
    }
}
