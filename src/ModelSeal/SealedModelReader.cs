using System.Security.Cryptography;


namespace ModelSeal;

/// <summary>
/// A sealed model opened for random access over a seekable stream: reads a byte range by decrypting and
/// authenticating only the chunks that cover it. Opening checks the file length and authenticates the final chunk, so
/// <see cref="Length"/> is trusted before any read. Thread-safe (reads are serialised); the last chunk read is cached.
/// </summary>
/// <remarks>A range read is authentic, but it says nothing about chunks outside it; use it for models that are
/// consumed piecewise, and <see cref="SealedModel.VerifyAsync"/> to check a whole file.</remarks>
public sealed class SealedModelReader : IDisposable
{
    private readonly Stream _source;
    private readonly long _payloadOffset;
    private readonly ChunkCipher _cipher;
    private readonly AesGcm _aead;
    private readonly bool _ownsSource;
    private readonly SealedModelHeader? _header;
    private readonly byte[] _ciphertext = new byte[Cobblestone.ChunkCiphertextSize];
    private readonly byte[] _plaintext = GC.AllocateArray<byte>(Cobblestone.ChunkSize, pinned: true);
    private readonly Lock _lock = new();
    private long _cachedChunk = -1;
    private bool _disposed;

    private SealedModelReader(Stream source, long payloadOffset, ChunkCipher cipher, long length, SealedModelHeader? header, bool ownsSource)
    {
        _header = header;
        _source = source;
        _payloadOffset = payloadOffset;
        _cipher = cipher;
        _aead = cipher.CreateAead();
        _ownsSource = ownsSource;
        Length = length;
    }

    /// <summary>The header of the sealed model.</summary>
    public SealedModelHeader Header => _header ?? throw new InvalidOperationException("A raw Cobblestone message has no header.");

    /// <summary>Length of the model in bytes (authenticated by the final chunk).</summary>
    public long Length { get; }

    /// <summary>
    /// Opens the payload at <paramref name="payloadOffset"/> (to the end of <paramref name="source"/>). Without a
    /// header (raw Cobblestone) the plaintext length is implied by the payload size.
    /// </summary>
    internal static SealedModelReader Open(Stream source, long payloadOffset, ModelKey key, ReadOnlySpan<byte> context, SealedModelHeader? header, bool ownsSource)
    {
        long? expectedLength = header?.PlaintextLength;
        long payloadLength = source.Length - payloadOffset;
        if (!Cobblestone.TryGetPlaintextLength(payloadLength, out long length) || (expectedLength is { } expected && expected != length))
        {
            throw new SealedModelAuthenticationException();
        }

        Span<byte> prefix = stackalloc byte[Cobblestone.PrefixSize];
        source.Position = payloadOffset;
        source.ReadExactly(prefix);
        var reader = new SealedModelReader(source, payloadOffset, ChunkCipher.ForDecryption(key.Bytes, context, prefix), length, header, ownsSource);
        try
        {
            reader.LoadChunk(Cobblestone.ChunkCount(length) - 1);
            return reader;
        }
        catch
        {
            reader.Dispose();
            throw;
        }
    }

    /// <summary>Reads up to <paramref name="buffer"/>.Length bytes at <paramref name="position"/>; returns 0 at the end.</summary>
    public int Read(long position, Span<byte> buffer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            int total = 0;
            while (total < buffer.Length && position < Length)
            {
                long index = position / Cobblestone.ChunkSize;
                LoadChunk(index);
                int offset = (int)(position % Cobblestone.ChunkSize);
                int count = Math.Min(buffer.Length - total, Cobblestone.ChunkPlaintextSize(Length, index) - offset);
                _plaintext.AsSpan(offset, count).CopyTo(buffer[total..]);
                total += count;
                position += count;
            }

            return total;
        }
    }

    /// <summary>Zeroes the cached plaintext and releases the source if this reader owns it.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            CryptographicOperations.ZeroMemory(_plaintext);
            _aead.Dispose();
            _cipher.Dispose();
            if (_ownsSource)
            {
                _source.Dispose();
            }
        }
    }

    private void LoadChunk(long index)
    {
        if (index == _cachedChunk)
        {
            return;
        }

        _cachedChunk = -1;
        int size = Cobblestone.ChunkPlaintextSize(Length, index);
        Span<byte> chunk = _ciphertext.AsSpan(0, size + Cobblestone.TagSize);
        _source.Position = _payloadOffset + Cobblestone.PrefixSize + (index * Cobblestone.ChunkCiphertextSize);
        _source.ReadExactly(chunk);
        if (!_cipher.TryDecrypt(_aead, index, chunk, _plaintext.AsSpan(0, size)))
        {
            throw new SealedModelAuthenticationException();
        }

        _cachedChunk = index;
    }
}
