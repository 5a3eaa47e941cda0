using System.Security.Cryptography;

namespace ModelSeal;

/// <summary>
/// A 32-byte model data key with the id that names it. The bytes live in a pinned array that is zeroed on
/// <see cref="Dispose"/>; they never appear in <see cref="ToString"/>, and leave only through <see cref="Export"/>.
/// </summary>
public sealed class ModelKey : IDisposable
{
    /// <summary>Size of a data key in bytes.</summary>
    public const int SizeInBytes = 32;

    private readonly byte[] _bytes = GC.AllocateArray<byte>(SizeInBytes, pinned: true);
    private bool _disposed;

    private ModelKey(string keyId)
    {
        KeyId = Identifier.Validate(keyId, "key id", Identifier.MaxIdLength, nameof(keyId));
    }

    /// <summary>The key id written into sealed models' headers (not secret).</summary>
    public string KeyId { get; }

    /// <summary>Creates a new random key.</summary>
    public static ModelKey Generate(string keyId)
    {
        var key = new ModelKey(keyId);
        RandomNumberGenerator.Fill(key._bytes);
        return key;
    }

    /// <summary>Creates a key from its 32 bytes (copied; the caller should zero its copy).</summary>
    /// <exception cref="ModelKeyException">The key is not 32 bytes.</exception>
    public static ModelKey Import(ReadOnlySpan<byte> keyBytes, string keyId)
    {
        if (keyBytes.Length != SizeInBytes)
        {
            throw new ModelKeyException($"A model data key is {SizeInBytes} bytes; got {keyBytes.Length}.");
        }

        var key = new ModelKey(keyId);
        keyBytes.CopyTo(key._bytes);
        return key;
    }

    /// <summary>Copies the secret key bytes into <paramref name="destination"/> (exactly 32 bytes). The only way out.</summary>
    public void Export(Span<byte> destination)
    {
        if (destination.Length != SizeInBytes)
        {
            throw new ArgumentException($"The destination must be exactly {SizeInBytes} bytes; got {destination.Length}.", nameof(destination));
        }

        Bytes.CopyTo(destination);
    }

    /// <summary>The secret bytes, for this library's own cryptography only.</summary>
    internal ReadOnlySpan<byte> Bytes
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _bytes;
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"ModelKey {{ KeyId = {KeyId} }}";

    /// <summary>Zeroes the key bytes. Using the key afterwards throws <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        _disposed = true;
        CryptographicOperations.ZeroMemory(_bytes);
    }
}
