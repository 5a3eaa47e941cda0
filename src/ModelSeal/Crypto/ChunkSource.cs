using System.Buffers;
using Microsoft.Win32.SafeHandles;

namespace ModelSeal;

/// <summary>
/// The chunks of a payload (everything after the 56-byte prefix) where any range can be fetched independently, so
/// that several workers fetch and decrypt at once: memory (no copy) or a file (positional reads, one buffer per worker).
/// </summary>
internal abstract class ChunkSource : IDisposable
{
    /// <summary>Most workers a source serves.</summary>
    public const int MaxWorkers = 64;

    /// <summary>Length of the chunks in bytes.</summary>
    public abstract long Length { get; }

    /// <summary>
    /// The <paramref name="bytes"/> bytes at <paramref name="offset"/> (at most one 8-chunk item), valid until the same
    /// worker reads again. A source that ends early throws <see cref="SealedModelAuthenticationException"/>.
    /// </summary>
    public abstract ReadOnlySpan<byte> Read(long offset, int bytes, int worker);

    /// <summary>Returns any buffers.</summary>
    public abstract void Dispose();

    /// <summary>Chunks already in memory: read without copying.</summary>
    public sealed class InMemory(ReadOnlyMemory<byte> chunks) : ChunkSource
    {
        public override long Length => chunks.Length;

        public override ReadOnlySpan<byte> Read(long offset, int bytes, int worker) => chunks.Span.Slice((int)offset, bytes);

        public override void Dispose()
        {
        }
    }

    /// <summary>Chunks in a file from <paramref name="start"/> to its end, read with positional reads (no shared file position).</summary>
    public sealed class File(SafeFileHandle handle, long start) : ChunkSource
    {
        /// <summary>Ciphertext of one 8-chunk item.</summary>
        private const int ItemBytes = 8 * Cobblestone.ChunkCiphertextSize;

        private readonly byte[]?[] _buffers = new byte[MaxWorkers][];

        public override long Length { get; } = RandomAccess.GetLength(handle) - start;

        public override ReadOnlySpan<byte> Read(long offset, int bytes, int worker)
        {
            byte[] buffer = _buffers[worker] ??= ArrayPool<byte>.Shared.Rent(ItemBytes);
            Span<byte> target = buffer.AsSpan(0, bytes);
            int total = 0;
            while (total < bytes)
            {
                int read = RandomAccess.Read(handle, target[total..], start + offset + total);
                if (read == 0)
                {
                    throw new SealedModelAuthenticationException(); // the file shrank under us: truncated
                }

                total += read;
            }

            return target;
        }

        public override void Dispose()
        {
            foreach (byte[]? buffer in _buffers)
            {
                if (buffer is not null)
                {
                    ArrayPool<byte>.Shared.Return(buffer); // ciphertext only: nothing to zero
                }
            }
        }
    }
}
