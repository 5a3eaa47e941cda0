using System.Buffers;
using System.Threading.Channels;
using System.Security.Cryptography;

namespace ModelSeal;

/// <summary>Where decrypted chunks go: a slice of one destination buffer, or per-worker scratch space (verification).</summary>
internal abstract class ChunkSink
{
    /// <summary>The span chunk <paramref name="index"/> decrypts into, for worker <paramref name="worker"/>.</summary>
    public abstract Span<byte> ChunkSpan(long index, int length, int worker);

    /// <summary>
    /// Called by <see cref="ChunkBatchDecryptor.DecryptRandomAccess"/> when worker <paramref name="worker"/> has
    /// decrypted and authenticated the <paramref name="bytes"/> bytes of the 8-chunk item starting at chunk
    /// <paramref name="firstChunk"/>.
    /// </summary>
    public virtual void ItemDone(long firstChunk, int bytes, int worker)
    {
    }

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

    /// <summary>
    /// Chunks decrypt into a per-worker item buffer, written to its place in a file once the whole item is
    /// authenticated (positional writes, so workers never share a file position). Only for
    /// <see cref="ChunkBatchDecryptor.DecryptRandomAccess"/>, whose items start at multiples of 8 chunks.
    /// </summary>
    public sealed class File(Microsoft.Win32.SafeHandles.SafeFileHandle handle, int workers) : ChunkSink, IDisposable
    {
        private readonly byte[] _scratch = GC.AllocateArray<byte>(workers * ChunkBatchDecryptor.ChunksPerItem * Cobblestone.ChunkSize, pinned: true);

        public override Span<byte> ChunkSpan(long index, int length, int worker) =>
            _scratch.AsSpan(((worker * ChunkBatchDecryptor.ChunksPerItem) + (int)(index % ChunkBatchDecryptor.ChunksPerItem)) * Cobblestone.ChunkSize, length);

        public override void ItemDone(long firstChunk, int bytes, int worker) =>
            RandomAccess.Write(handle, _scratch.AsSpan(worker * ChunkBatchDecryptor.ChunksPerItem * Cobblestone.ChunkSize, bytes), firstChunk * Cobblestone.ChunkSize);

        public void Dispose() => CryptographicOperations.ZeroMemory(_scratch);
    }
}

/// <summary>
/// Decrypts all chunks of a Cobblestone payload of known plaintext length from a stream (positioned just after the
/// 56-byte prefix), reading it once, front to back, in batches of 64 chunks (about 1 MiB) into a few small reused
/// buffers. With one thread it reads and decrypts in turn. With N threads it is a pipeline: the calling flow reads
/// batch after batch into a ring of N + 1 buffers and queues each batch as work items of 8 chunks, which N workers
/// decrypt as they arrive, so reading overlaps decryption and no worker waits for a barrier. Any failure throws
/// <see cref="SealedModelAuthenticationException"/>; the sink may then hold partial plaintext, which the caller zeroes.
/// </summary>
internal static class ChunkBatchDecryptor
{
    /// <summary>Chunks per batch: 64 chunks, about 1 MiB of ciphertext.</summary>
    internal const int ChunksPerBatch = 64;

    internal const int ChunksPerItem = 8;

    public static Task DecryptAsync(
        Stream source,
        ChunkCipher cipher,
        long plaintextLength,
        ChunkSink sink,
        int parallelism,
        IProgress<ModelSealProgress>? progress,
        CancellationToken cancellationToken)
    {
        var job = new Job(source, cipher, plaintextLength, sink, progress, cancellationToken);
        parallelism = (int)Math.Clamp(parallelism, 1, Math.Min(ChunksPerBatch, job.ChunkCount));
        return parallelism == 1 ? job.RunSequentialAsync() : job.RunPipelinedAsync(parallelism);
    }

    /// <summary>
    /// Decrypts the chunks of a payload that is randomly accessible (<paramref name="chunks"/> holds everything after the
    /// 56-byte prefix: memory, or a file read with positional reads). No reader thread and no shared buffer:
    /// <paramref name="parallelism"/> workers claim 8-chunk items and fetch each straight from the source (from memory
    /// without a copy; from a file into the worker's own buffer). Throws <see cref="SealedModelAuthenticationException"/>
    /// on any authentication failure, and rethrows the first I/O error.
    /// </summary>
    public static void DecryptRandomAccess(ChunkSource chunks, ChunkCipher cipher, long plaintextLength, ChunkSink sink, int parallelism, IProgress<ModelSealProgress>? progress, CancellationToken cancellationToken)
    {
        if (chunks.Length != Cobblestone.CiphertextLength(plaintextLength) - Cobblestone.PrefixSize)
        {
            throw new SealedModelAuthenticationException(); // truncated or extended: found before a chunk is touched
        }

        long chunkCount = Cobblestone.ChunkCount(plaintextLength);
        long items = (chunkCount + ChunksPerItem - 1) / ChunksPerItem;
        parallelism = (int)Math.Clamp(parallelism, 1, Math.Min(items, ChunkSource.MaxWorkers));
        long claimed = -1;
        long decrypted = 0;
        int failed = 0;
        Exception? fault = null;

        void Work(int worker)
        {
            try
            {
                using AesGcm aead = cipher.CreateAead();
                long item;
                while (Volatile.Read(ref failed) == 0 && !cancellationToken.IsCancellationRequested && (item = Interlocked.Increment(ref claimed)) < items)
                {
                    long first = item * ChunksPerItem;
                    long end = Math.Min(first + ChunksPerItem, chunkCount);
                    long offset = first * Cobblestone.ChunkCiphertextSize;
                    int bytes = checked((int)((((end - 1) * Cobblestone.ChunkCiphertextSize) + Cobblestone.ChunkPlaintextSize(plaintextLength, end - 1) + Cobblestone.TagSize) - offset));
                    ReadOnlySpan<byte> ciphertext = chunks.Read(offset, bytes, worker);
                    int plainBytes = 0;
                    for (long index = first; index < end; index++)
                    {
                        int size = Cobblestone.ChunkPlaintextSize(plaintextLength, index);
                        if (!cipher.TryDecrypt(aead, index, ciphertext.Slice((int)((index - first) * Cobblestone.ChunkCiphertextSize), size + Cobblestone.TagSize), sink.ChunkSpan(index, size, worker)))
                        {
                            Volatile.Write(ref failed, 1);
                            return;
                        }

                        plainBytes += size;
                    }

                    sink.ItemDone(first, plainBytes, worker);
                    long done = Interlocked.Add(ref decrypted, plainBytes);
                    if (worker == 0)
                    {
                        progress?.Report(new ModelSealProgress(done, plaintextLength));
                    }
                }
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref fault, e, null);
                Volatile.Write(ref failed, 1);
            }
        }

        var helpers = new Task[parallelism - 1];
        for (int w = 1; w < parallelism; w++)
        {
            int worker = w;
            helpers[w - 1] = Task.Run(() => Work(worker), CancellationToken.None);
        }

        Work(0);
        Task.WaitAll(helpers, CancellationToken.None); // they read the source and write the sink: wait before returning

        if (fault is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(fault);
        }

        cancellationToken.ThrowIfCancellationRequested();
        if (failed != 0)
        {
            throw new SealedModelAuthenticationException();
        }

        progress?.Report(new ModelSealProgress(decrypted, plaintextLength));
    }

    private readonly record struct WorkItem(int Slot, long FirstChunk, int From, int To);

    private sealed class Job(Stream source, ChunkCipher cipher, long plaintextLength, ChunkSink sink, IProgress<ModelSealProgress>? progress, CancellationToken cancellationToken)
    {
        private readonly int _batchBytes = (int)Math.Min(ChunksPerBatch * (long)Cobblestone.ChunkCiphertextSize, Cobblestone.CiphertextLength(plaintextLength) - Cobblestone.PrefixSize);
        private long _decrypted;
        private volatile bool _stop;
        private volatile bool _failed;
        private Exception? _fault;

        public long ChunkCount { get; } = Cobblestone.ChunkCount(plaintextLength);

        public async Task RunSequentialAsync()
        {
            byte[] buffer = ArrayPool<byte>.Shared.Rent(_batchBytes);
            using AesGcm aead = cipher.CreateAead();
            try
            {
                for (long first = 0; first < ChunkCount; first += ChunksPerBatch)
                {
                    int length = await ReadBatchAsync(buffer, first).ConfigureAwait(false);
                    Decrypt(aead, buffer.AsSpan(0, length), first, 0, ChunksIn(first), worker: 0);
                    ThrowIfFailedOrCancelled();
                    progress?.Report(new ModelSealProgress(_decrypted, plaintextLength));
                }

                await EnsureEndAsync().ConfigureAwait(false);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        public async Task RunPipelinedAsync(int workers)
        {
            int slots = workers + 1;
            var buffers = new byte[slots][];
            var pending = new int[slots];
            var slotFree = new SemaphoreSlim[slots];
            var aeads = new AesGcm[workers];
            var tasks = new List<Task>(workers);
            var queue = Channel.CreateUnbounded<WorkItem>(new UnboundedChannelOptions { SingleWriter = true });
            try
            {
                for (int i = 0; i < slots; i++)
                {
                    buffers[i] = ArrayPool<byte>.Shared.Rent(_batchBytes);
                    slotFree[i] = new SemaphoreSlim(1, 1);
                }

                for (int w = 0; w < workers; w++)
                {
                    aeads[w] = cipher.CreateAead();
                    int worker = w;
                    tasks.Add(Task.Run(() => WorkAsync(queue.Reader, buffers, pending, slotFree, aeads[worker], worker), CancellationToken.None));
                }

                try
                {
                    int slot = 0;
                    for (long first = 0; first < ChunkCount && !_failed && !_stop; first += ChunksPerBatch, slot = (slot + 1) % slots)
                    {
                        await slotFree[slot].WaitAsync(cancellationToken).ConfigureAwait(false);
                        progress?.Report(new ModelSealProgress(Interlocked.Read(ref _decrypted), plaintextLength));
                        await ReadBatchAsync(buffers[slot], first).ConfigureAwait(false);
                        int chunks = ChunksIn(first);
                        pending[slot] = (chunks + ChunksPerItem - 1) / ChunksPerItem;
                        for (int from = 0; from < chunks; from += ChunksPerItem)
                        {
                            queue.Writer.TryWrite(new WorkItem(slot, first, from, Math.Min(from + ChunksPerItem, chunks)));
                        }
                    }

                    if (!_failed && !_stop)
                    {
                        await EnsureEndAsync().ConfigureAwait(false);
                    }
                }
                catch
                {
                    _stop = true; // the workers skip what is still queued
                    throw;
                }
                finally
                {
                    queue.Writer.Complete();
                    // The workers use the buffers and AesGcm instances: wait for them before anything is released.
                    await Task.WhenAll(tasks).ConfigureAwait(false);
                }

                ThrowIfFailedOrCancelled();
                progress?.Report(new ModelSealProgress(_decrypted, plaintextLength));
            }
            finally
            {
                foreach (AesGcm? aead in aeads)
                {
                    aead?.Dispose();
                }

                foreach (byte[]? buffer in buffers)
                {
                    if (buffer is not null)
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                    }
                }

                foreach (SemaphoreSlim? semaphore in slotFree)
                {
                    semaphore?.Dispose();
                }
            }
        }

        private async Task WorkAsync(ChannelReader<WorkItem> queue, byte[][] buffers, int[] pending, SemaphoreSlim[] slotFree, AesGcm aead, int worker)
        {
            await foreach (WorkItem item in queue.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
            {
                if (!_stop && !_failed && !cancellationToken.IsCancellationRequested)
                {
                    try
                    {
                        int batchLength = (int)Math.Min(_batchBytes, Cobblestone.CiphertextLength(plaintextLength) - Cobblestone.PrefixSize - (item.FirstChunk * Cobblestone.ChunkCiphertextSize));
                        Decrypt(aead, buffers[item.Slot].AsSpan(0, batchLength), item.FirstChunk, item.From, item.To, worker);
                    }
                    catch (Exception e)
                    {
                        // Keep draining the queue (so the reader never waits for a slot in vain); rethrown after.
                        Interlocked.CompareExchange(ref _fault, e, null);
                        _stop = true;
                    }
                }

                if (Interlocked.Decrement(ref pending[item.Slot]) == 0)
                {
                    slotFree[item.Slot].Release();
                }
            }
        }

        /// <summary>Decrypts chunks [from, to) of the batch that starts at <paramref name="firstChunk"/>.</summary>
        private void Decrypt(AesGcm aead, ReadOnlySpan<byte> batch, long firstChunk, int from, int to, int worker)
        {
            for (int i = from; i < to && !_failed; i++)
            {
                long index = firstChunk + i;
                int size = Cobblestone.ChunkPlaintextSize(plaintextLength, index);
                ReadOnlySpan<byte> chunk = batch.Slice(i * Cobblestone.ChunkCiphertextSize, size + Cobblestone.TagSize);
                if (!cipher.TryDecrypt(aead, index, chunk, sink.ChunkSpan(index, size, worker)))
                {
                    _failed = true;
                    return;
                }

                Interlocked.Add(ref _decrypted, size);
            }
        }

        private int ChunksIn(long firstChunk) => (int)Math.Min(ChunksPerBatch, ChunkCount - firstChunk);

        /// <summary>Reads the ciphertext of the batch starting at chunk <paramref name="firstChunk"/>; a short read is truncation.</summary>
        private async Task<int> ReadBatchAsync(byte[] buffer, long firstChunk)
        {
            long lastChunk = firstChunk + ChunksIn(firstChunk) - 1;
            int bytes = checked((int)(((lastChunk - firstChunk) * Cobblestone.ChunkCiphertextSize)
                + Cobblestone.ChunkPlaintextSize(plaintextLength, lastChunk) + Cobblestone.TagSize));
            int read = await source.ReadAtLeastAsync(buffer.AsMemory(0, bytes), bytes, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
            return read == bytes ? read : throw new SealedModelAuthenticationException();
        }

        /// <summary>The final chunk was the short one the header promised; the payload must end right after it.</summary>
        private async Task EnsureEndAsync()
        {
            byte[] probe = new byte[1];
            if (await source.ReadAsync(probe, cancellationToken).ConfigureAwait(false) != 0)
            {
                throw new SealedModelAuthenticationException();
            }
        }

        private void ThrowIfFailedOrCancelled()
        {
            if (_fault is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(_fault);
            }

            cancellationToken.ThrowIfCancellationRequested();
            if (_failed)
            {
                throw new SealedModelAuthenticationException();
            }
        }
    }
}
