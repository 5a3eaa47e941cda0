namespace ModelSeal.Server.Storage;

/// <summary>
/// The server's master keys, whichever <see cref="IMasterKeyProvider"/> holds them: wraps new data keys with the
/// current version, unwraps with any version, and adds versions for rotation (the caller rewraps). Disposing it
/// disposes the provider.
/// </summary>
internal sealed class MasterKeyRing(IMasterKeyProvider provider) : IDisposable
{
    public const int KeySize = 32;
    public const int NonceSize = 12;
    public const int TagSize = 16;
    public const int WrappedSize = NonceSize + ModelKey.SizeInBytes + TagSize;

    /// <summary>The provider behind the ring.</summary>
    public IMasterKeyProvider Provider { get; } = provider ?? throw new ArgumentNullException(nameof(provider));

    /// <summary>The version that wraps new keys.</summary>
    public int CurrentVersion => Provider.CurrentVersion;

    /// <summary>Loads <c>master.keys</c> (the file provider), or creates it with v1 when <paramref name="mayCreate"/>.</summary>
    public static MasterKeyRing LoadOrCreate(string path, bool mayCreate) => new(FileMasterKeyProvider.LoadOrCreate(path, mayCreate));

    /// <inheritdoc cref="IMasterKeyProvider.Wrap"/>
    public (int Version, byte[] Wrapped) Wrap(ReadOnlySpan<byte> dataKey, string keyId)
    {
        if (dataKey.Length != ModelKey.SizeInBytes)
        {
            throw new ArgumentException($"A data key is {ModelKey.SizeInBytes} bytes, not {dataKey.Length}.", nameof(dataKey));
        }

        return Provider.Wrap(dataKey, keyId);
    }

    /// <inheritdoc cref="IMasterKeyProvider.Unwrap"/>
    public void Unwrap(int version, ReadOnlySpan<byte> wrapped, string keyId, Span<byte> dataKey)
    {
        if (dataKey.Length != ModelKey.SizeInBytes)
        {
            throw new ArgumentException($"A data key is {ModelKey.SizeInBytes} bytes, not {dataKey.Length}.", nameof(dataKey));
        }

        if (wrapped.Length != WrappedSize)
        {
            throw new System.Security.Cryptography.CryptographicException("A wrapped data key has the wrong size.");
        }

        Provider.Unwrap(version, wrapped, keyId, dataKey);
    }

    /// <inheritdoc cref="IMasterKeyProvider.AddVersion"/>
    public int AddVersion() => Provider.AddVersion();

    /// <summary>Disposes the provider (zeroes file keys, closes token sessions).</summary>
    public void Dispose() => Provider.Dispose();
}
