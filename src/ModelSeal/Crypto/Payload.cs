using System.Buffers;
using System.Security.Cryptography;

namespace ModelSeal;

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
        CheckWholeModelLength(length);
        using ChunkCipher cipher = await OpenAsync(source, key, context, cancellationToken).ConfigureAwait(false);
        byte[] plaintext = GC.AllocateUninitializedArray<byte>((int)length, pinned: true);
        try
        {
            await DecryptChunksAsync(source, cipher, length, new ChunkSink.Buffer(plaintext), parallelism, progress, cancellationToken).ConfigureAwait(false);
            return plaintext;
        }
        catch
        {
            CryptographicOperations.ZeroMemory(plaintext);
            throw;
        }
    }

    /// <summary>
    /// Decrypts a whole message that is in memory (<paramref name="payload"/> = prefix and chunks, nothing else) into
    /// the first <paramref name="length"/> bytes of <paramref name="destination"/>, without reading or copying the
    /// ciphertext. On failure the destination may hold partial plaintext: the caller zeroes it.
    /// </summary>
    public static void DecryptInMemory(ReadOnlyMemory<byte> payload, ModelKey key, byte[] context, long length, Memory<byte> destination, int parallelism, CancellationToken cancellationToken)
    {
        // The payload must have exactly the length the plaintext length implies: checked before anything is touched.
        if (payload.Length != Cobblestone.CiphertextLength(length))
        {
            throw new SealedModelAuthenticationException();
        }

        using ChunkCipher cipher = ChunkCipher.ForDecryption(key.Bytes, context, payload.Span[..Cobblestone.PrefixSize]);
        using var chunks = new ChunkSource.InMemory(payload[Cobblestone.PrefixSize..]);
        ChunkBatchDecryptor.DecryptRandomAccess(chunks, cipher, length, new ChunkSink.Buffer(destination), parallelism, progress: null, cancellationToken);
    }

    /// <summary>Authenticates every chunk of a message of <paramref name="length"/> bytes, keeping no plaintext.</summary>
    public static async Task VerifyAsync(Stream source, ModelKey key, byte[] context, long length, int parallelism, IProgress<ModelSealProgress>? progress, CancellationToken cancellationToken)
    {
        using ChunkCipher cipher = await OpenAsync(source, key, context, cancellationToken).ConfigureAwait(false);
        using var sink = new ChunkSink.Discard(Math.Clamp(parallelism, 1, ChunkSource.MaxWorkers));
        await DecryptChunksAsync(source, cipher, length, sink, parallelism, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Decrypts a message from a seekable file into another file, in parallel with positional reads and writes and
    /// without a buffer of the message's size. Each 8-chunk item is written once authenticated, so on failure the
    /// destination holds partial plaintext: the caller deletes it (CLI: a temporary file that is never committed).
    /// </summary>
    public static async Task DecryptToFileAsync(FileStream source, ModelKey key, byte[] context, long length, FileStream destination, int parallelism, IProgress<ModelSealProgress>? progress, CancellationToken cancellationToken)
    {
        using ChunkCipher cipher = await OpenAsync(source, key, context, cancellationToken).ConfigureAwait(false);
        using var chunks = new ChunkSource.File(source.SafeFileHandle, source.Position);
        int workers = Math.Clamp(parallelism, 1, ChunkSource.MaxWorkers);
        using var sink = new ChunkSink.File(destination.SafeFileHandle, workers);
        ChunkBatchDecryptor.DecryptRandomAccess(chunks, cipher, length, sink, workers, progress, cancellationToken);
    }

    /// <summary>Whole-model decryption holds the model in one array.</summary>
    public static void CheckWholeModelLength(long length)
    {
        if (length > Array.MaxLength)
        {
            throw new NotSupportedException(
                $"The model is {length} bytes; whole-model decryption holds at most {Array.MaxLength} bytes. Use SealedModel.OpenReadAsync to stream it.");
        }
    }

    /// <summary>
    /// Decrypts the chunks that follow the prefix in <paramref name="source"/>. A seekable file is read by every worker
    /// at once with positional reads (and left positioned at its end); any other stream goes through the
    /// single-reader pipeline.
    /// </summary>
    private static async Task DecryptChunksAsync(Stream source, ChunkCipher cipher, long length, ChunkSink sink, int parallelism, IProgress<ModelSealProgress>? progress, CancellationToken cancellationToken)
    {
        if (source is FileStream { CanSeek: true } file)
        {
            long start = file.Position;
            using var chunks = new ChunkSource.File(file.SafeFileHandle, start);
            ChunkBatchDecryptor.DecryptRandomAccess(chunks, cipher, length, sink, parallelism, progress, cancellationToken);
            file.Position = start + chunks.Length;
        }
        else
        {
            await ChunkBatchDecryptor.DecryptAsync(source, cipher, length, sink, parallelism, progress, cancellationToken).ConfigureAwait(false);
        }
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
