using System.Buffers;
using System.Security.Cryptography;

namespace ModelSeal.Crypto;

/// <summary>Where decrypted chunks go: a slice of one destination buffer, or per-worker scratch space (verification).</summary>
internal abstract class ChunkSink
{
    /// <summary>The span chunk <paramref name="index"/> decrypts into, for worker <paramref name="worker"/>.</summary>
    public abstract Span<byte> ChunkSpan(long index, int length, int worker);

    /// <summary>Chunks decrypt into their place in one buffer holding the whole message.</summary>
    public sealed class Buffer(Memory<byte> destination) : ChunkSink
    {
        public override Span<byte> ChunkSpan(long index, int length, int worker) =>
            destination.Span.Slice(checked((int)(index * Cobblestone.ChunkSize)), length);
    }

    /// <summary>Chunks decrypt into a per-worker scratch chunk that is zeroed afterwards (verify without output).</summary>
    public sealed class Discard(int workers) : ChunkSink, IDisposable
    {
        private readonly byte[] _scratch = GC.AllocateArray<byte>(workers * Cobblestone.ChunkSize, pinned: true);

        public override Span<byte> ChunkSpan(long index, int length, int worker) =>
            _scratch.AsSpan(worker * Cobblestone.ChunkSize, length);

        public void Dispose() => CryptographicOperations.ZeroMemory(_scratch);
    }
}

/// <summary>
/// Decrypts all chunks of a Cobblestone payload of known plaintext length from a stream (positioned just after the
/// 56-byte prefix). The stream is read in large batches into two small reused buffers; while one batch is decrypted
/// (across <c>parallelism</c> workers, each with its own AesGcm) the next is read. Any failure throws
/// <see cref="SealedModelAuthenticationException"/>; the sink may then hold partial plaintext, which the caller zeroes.
/// </summary>
internal static class ChunkBatchDecryptor
{
    /// <summary>Chunks per batch: 64 chunks, about 1 MiB of ciphertext.</summary>
    internal const int ChunksPerBatch = 64;

    public static async Task DecryptAsync(
        Stream source,
        ChunkCipher cipher,
        long plaintextLength,
        ChunkSink sink,
        int parallelism,
        IProgress<ModelSealProgress>? progress,
        CancellationToken cancellationToken)
    {
        long chunkCount = Cobblestone.ChunkCount(plaintextLength);
        int batchBytes = (int)Math.Min(ChunksPerBatch * (long)Cobblestone.ChunkCiphertextSize, Cobblestone.CiphertextLength(plaintextLength) - Cobblestone.PrefixSize);
        parallelism = Math.Clamp(parallelism, 1, ChunksPerBatch);
        byte[] current = ArrayPool<byte>.Shared.Rent(batchBytes);
        byte[] next = ArrayPool<byte>.Shared.Rent(batchBytes);
        var aeads = new AesGcm[parallelism];
        try
        {
            for (int i = 0; i < aeads.Length; i++)
            {
                aeads[i] = cipher.CreateAead();
            }

            long batchStart = 0;
            int length = await ReadBatchAsync(source, current, plaintextLength, batchStart, cancellationToken).ConfigureAwait(false);
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                long nextStart = batchStart + ChunksPerBatch;
                Task<int>? nextRead = null;
                if (nextStart < chunkCount)
                {
                    byte[] target = next;
                    nextRead = parallelism > 1
                        ? Task.Run(() => ReadBatchAsync(source, target, plaintextLength, nextStart, cancellationToken), cancellationToken)
                        : ReadBatchAsync(source, target, plaintextLength, nextStart, cancellationToken);
                }

                bool ok;
                try
                {
                    ok = DecryptBatch(cipher, aeads, current.AsMemory(0, length), batchStart, plaintextLength, sink, cancellationToken);
                }
                catch when (nextRead is not null)
                {
                    // Let the pending read finish before its buffer goes back to the pool.
                    await nextRead.ContinueWith(static _ => { }, TaskScheduler.Default).ConfigureAwait(false);
                    throw;
                }

                int nextLength = nextRead is null ? 0 : await nextRead.ConfigureAwait(false);
                if (!ok)
                {
                    throw new SealedModelAuthenticationException();
                }

                long done = Math.Min(nextStart * Cobblestone.ChunkSize, plaintextLength);
                progress?.Report(new ModelSealProgress(done, plaintextLength));
                if (nextRead is null)
                {
                    break;
                }

                (current, next) = (next, current);
                batchStart = nextStart;
                length = nextLength;
            }

            // The final chunk was the short one the header promised; the payload must end right after it.
            if (await source.ReadAsync(current.AsMemory(0, 1), cancellationToken).ConfigureAwait(false) != 0)
            {
                throw new SealedModelAuthenticationException();
            }
        }
        finally
        {
            foreach (AesGcm? aead in aeads)
            {
                aead?.Dispose();
            }

            ArrayPool<byte>.Shared.Return(current);
            ArrayPool<byte>.Shared.Return(next);
        }
    }

    /// <summary>Reads the ciphertext of the batch starting at chunk <paramref name="firstChunk"/>; a short read is truncation.</summary>
    private static async Task<int> ReadBatchAsync(Stream source, byte[] buffer, long plaintextLength, long firstChunk, CancellationToken cancellationToken)
    {
        long chunkCount = Cobblestone.ChunkCount(plaintextLength);
        long lastChunk = Math.Min(firstChunk + ChunksPerBatch, chunkCount) - 1;
        int bytes = checked((int)(((lastChunk - firstChunk) * Cobblestone.ChunkCiphertextSize)
            + Cobblestone.ChunkPlaintextSize(plaintextLength, lastChunk) + Cobblestone.TagSize));
        int read = await source.ReadAtLeastAsync(buffer.AsMemory(0, bytes), bytes, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        return read == bytes ? read : throw new SealedModelAuthenticationException();
    }

    private static bool DecryptBatch(ChunkCipher cipher, AesGcm[] aeads, ReadOnlyMemory<byte> batch, long firstChunk, long plaintextLength, ChunkSink sink, CancellationToken cancellationToken)
    {
        int chunks = (int)((batch.Length + Cobblestone.ChunkCiphertextSize - 1) / Cobblestone.ChunkCiphertextSize);
        int workers = Math.Min(aeads.Length, chunks);
        if (workers == 1)
        {
            return DecryptRange(cipher, aeads[0], batch.Span, firstChunk, 0, chunks, plaintextLength, sink, 0);
        }

        int failures = 0;
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers, CancellationToken = cancellationToken }, worker =>
        {
            int from = chunks * worker / workers;
            int to = chunks * (worker + 1) / workers;
            if (!DecryptRange(cipher, aeads[worker], batch.Span, firstChunk, from, to, plaintextLength, sink, worker))
            {
                Interlocked.Increment(ref failures);
            }
        });
        return failures == 0;
    }

    private static bool DecryptRange(ChunkCipher cipher, AesGcm aead, ReadOnlySpan<byte> batch, long firstChunk, int from, int to, long plaintextLength, ChunkSink sink, int worker)
    {
        for (int i = from; i < to; i++)
        {
            long index = firstChunk + i;
            int size = Cobblestone.ChunkPlaintextSize(plaintextLength, index);
            ReadOnlySpan<byte> chunk = batch.Slice(i * Cobblestone.ChunkCiphertextSize, size + Cobblestone.TagSize);
            if (!cipher.TryDecrypt(aead, index, chunk, sink.ChunkSpan(index, size, worker)))
            {
                return false;
            }
        }

        return true;
    }
}
