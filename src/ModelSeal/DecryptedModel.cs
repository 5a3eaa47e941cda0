using System.Security.Cryptography;

namespace ModelSeal;

/// <summary>
/// A whole decrypted model in one pinned buffer of exactly the model's length, authenticated in full before this
/// object existed. Dispose it as soon as the model is loaded: disposing zeroes the buffer.
/// </summary>
public sealed class DecryptedModel : IDisposable
{
    private readonly byte[] _buffer;
    private bool _disposed;

    internal DecryptedModel(SealedModelHeader header, byte[] buffer)
    {
        Header = header;
        _buffer = buffer;
    }

    /// <summary>The header of the sealed model this came from.</summary>
    public SealedModelHeader Header { get; }

    /// <summary>The model's content type, as detected when it was sealed.</summary>
    public ModelContentType ContentType => Header.ContentType;

    /// <summary>Length of the model in bytes.</summary>
    public int Length => _buffer.Length;

    /// <summary>The model bytes.</summary>
    public ReadOnlySpan<byte> Span => Buffer;

    /// <summary>The model bytes.</summary>
    public ReadOnlyMemory<byte> Memory => Buffer;

    private byte[] Buffer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _buffer;
        }
    }

    /// <summary>
    /// The pinned array itself, for runtimes that only take a <c>byte[]</c> (ONNX Runtime's InferenceSession).
    /// The array is zeroed when this object is disposed: a runtime that keeps reading it must be disposed first.
    /// </summary>
    public byte[] DangerousGetArray() => Buffer;

    /// <summary>A read-only stream over the model bytes (valid until disposal).</summary>
    public Stream OpenStream() => new MemoryStream(Buffer, writable: false);

    /// <summary>Zeroes the model bytes.</summary>
    public void Dispose()
    {
        _disposed = true;
        CryptographicOperations.ZeroMemory(_buffer);
    }
}
