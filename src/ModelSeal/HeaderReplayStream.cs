namespace ModelSeal;

/// <summary>
/// A forward-only read stream that yields an already-read header again, then the rest of the source. Lets the header
/// be read once to choose the key while the core's decryption still reads the sealed model front to back; works for
/// non-seekable sources. Does not own <c>source</c>.
/// </summary>
internal sealed class HeaderReplayStream(ReadOnlyMemory<byte> header, Stream source) : Stream
{
    private ReadOnlyMemory<byte> _pending = header;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (!_pending.IsEmpty)
        {
            return TakePending(buffer);
        }

        return source.Read(buffer);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (!_pending.IsEmpty)
        {
            cancellationToken.ThrowIfCancellationRequested();
            return ValueTask.FromResult(TakePending(buffer.Span));
        }

        return source.ReadAsync(buffer, cancellationToken);
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    private int TakePending(Span<byte> buffer)
    {
        int n = Math.Min(buffer.Length, _pending.Length);
        _pending.Span[..n].CopyTo(buffer);
        _pending = _pending[n..];
        return n;
    }
}
