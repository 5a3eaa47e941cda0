using System.Security.Cryptography;


namespace ModelSeal;

/// <summary>
/// A sealed model opened for streaming: a read-only, forward-only stream of the model bytes. Each 16 KiB chunk is
/// released only after its authentication tag verifies; truncation, trailing data or any altered byte makes a read
/// throw <see cref="SealedModelAuthenticationException"/>, and every later read throws again.
/// </summary>
/// <remarks>
/// Chunks are authenticated one at a time, so the model as a whole is authentic only once a read has returned 0
/// (end of stream) without throwing. Do not act on the data (load, execute or cache it) before that: a truncated or
/// altered file is reported at the point of damage, possibly after earlier chunks were returned.
/// </remarks>
public sealed class SealedModelStream : Stream
{
    private readonly Stream _source;
    private readonly bool _ownsSource;
    private readonly ChunkCipher _cipher;
    private readonly AesGcm _aead;
    private readonly long? _expectedLength;
    private readonly SealedModelHeader? _header;
    private readonly byte[] _ciphertext = new byte[Cobblestone.ChunkCiphertextSize + 1];
    private readonly byte[] _plaintext = GC.AllocateArray<byte>(Cobblestone.ChunkSize, pinned: true);
    private int _buffered;        // ciphertext bytes already read (at most one look-ahead byte between chunks)
    private int _plaintextStart;
    private int _plaintextEnd;
    private long _chunkIndex;
    private long _position;
    private bool _finished;
    private bool _failed;

    // source: positioned just after the verified 56-byte prefix; header: null for a raw Cobblestone message.
    internal SealedModelStream(Stream source, ChunkCipher cipher, SealedModelHeader? header, bool ownsSource)
    {
        _source = source;
        _header = header;
        _cipher = cipher;
        _aead = cipher.CreateAead();
        _expectedLength = header?.PlaintextLength;
        _ownsSource = ownsSource;
    }

    /// <summary>The header of the sealed model.</summary>
    public SealedModelHeader Header => _header ?? throw new InvalidOperationException("A raw Cobblestone stream has no header.");

    /// <inheritdoc />
    public override bool CanRead => true;

    /// <inheritdoc />
    public override bool CanSeek => false;

    /// <inheritdoc />
    public override bool CanWrite => false;

    /// <inheritdoc />
    public override long Length => _expectedLength ?? throw new NotSupportedException("The length of a raw Cobblestone stream is known only at its end.");

    /// <inheritdoc />
    public override long Position
    {
        get => _position;
        set => throw new NotSupportedException("A streaming sealed model cannot seek; use SealedModel.OpenRandomAccessAsync.");
    }

    /// <inheritdoc />
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <inheritdoc />
    public override int Read(Span<byte> buffer)
    {
        while (_plaintextStart == _plaintextEnd && !_finished && buffer.Length > 0)
        {
            ThrowIfFailed();
            int read = _source.ReadAtLeast(_ciphertext.AsSpan(_buffered), _ciphertext.Length - _buffered, throwOnEndOfStream: false);
            DecryptNext(read);
        }

        return CopyOut(buffer);
    }

    /// <inheritdoc />
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc />
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (_plaintextStart == _plaintextEnd && !_finished && buffer.Length > 0)
        {
            ThrowIfFailed();
            int read = await _source.ReadAtLeastAsync(_ciphertext.AsMemory(_buffered), _ciphertext.Length - _buffered, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
            DecryptNext(read);
        }

        return CopyOut(buffer.Span);
    }

    /// <inheritdoc />
    public override void Flush()
    {
    }

    /// <inheritdoc />
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException("A streaming sealed model cannot seek.");

    /// <inheritdoc />
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <inheritdoc />
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            CryptographicOperations.ZeroMemory(_plaintext);
            _aead.Dispose();
            _cipher.Dispose();
            if (_ownsSource)
            {
                _source.Dispose();
            }
        }

        base.Dispose(disposing);
    }

    private void ThrowIfFailed()
    {
        if (_failed)
        {
            throw new SealedModelAuthenticationException();
        }
    }

    private int CopyOut(Span<byte> buffer)
    {
        if (_failed && _plaintextStart == _plaintextEnd)
        {
            throw new SealedModelAuthenticationException();
        }

        int count = Math.Min(buffer.Length, _plaintextEnd - _plaintextStart);
        _plaintext.AsSpan(_plaintextStart, count).CopyTo(buffer);
        _plaintextStart += count;
        _position += count;
        return count;
    }

    /// <summary>Decrypts the chunk now in the ciphertext buffer (<paramref name="read"/> new bytes after the carried ones).</summary>
    private void DecryptNext(int read)
    {
        int available = _buffered + read;
        // A full buffer means a full chunk followed by at least one more byte: not the final chunk.
        bool final = available < _ciphertext.Length;
        int chunkLength = final ? available : Cobblestone.ChunkCiphertextSize;
        int size = chunkLength - Cobblestone.TagSize;
        bool valid = size is >= 0 and < Cobblestone.ChunkSize || (!final && size == Cobblestone.ChunkSize);
        valid &= _chunkIndex < Cobblestone.MaxChunks;
        if (_expectedLength is { } expected)
        {
            long expectedFinal = Cobblestone.ChunkCount(expected) - 1;
            valid &= final
                ? _chunkIndex == expectedFinal && size == Cobblestone.ChunkPlaintextSize(expected, _chunkIndex)
                : _chunkIndex < expectedFinal;
        }

        if (!valid || !_cipher.TryDecrypt(_aead, _chunkIndex, _ciphertext.AsSpan(0, chunkLength), _plaintext.AsSpan(0, size)))
        {
            _failed = true;
            throw new SealedModelAuthenticationException();
        }

        _plaintextStart = 0;
        _plaintextEnd = size;
        _chunkIndex++;
        if (final)
        {
            _finished = true;
            _buffered = 0;
        }
        else
        {
            _ciphertext[0] = _ciphertext[^1];
            _buffered = 1;
        }
    }
}
