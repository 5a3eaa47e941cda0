namespace ModelSeal.Server.MasterKeys;

/// <summary>
/// Where the master keys live and how data keys are wrapped with them: <see cref="FileMasterKeyProvider"/>
/// (<c>master.keys</c> in the data directory, the default) or <see cref="Pkcs11MasterKeyProvider"/> (AES keys
/// generated inside a PKCS#11 token that never leave it). Every provider keeps the same storage model: a data key is
/// stored as <see cref="MasterKeyRing.WrappedSize"/> wrapped bytes (12-byte nonce, ciphertext, 16-byte tag of
/// AES-256-GCM with the key id as associated data) plus the master-key version that wrapped it. Implementations are
/// thread-safe.
/// </summary>
internal interface IMasterKeyProvider : IDisposable
{
    /// <summary>What the provider is, for logs ("file /path/master.keys", "pkcs11 token 'x' key 'y'"); no secrets.</summary>
    string Description { get; }

    /// <summary>The version that wraps new keys.</summary>
    int CurrentVersion { get; }

    /// <summary>Wraps a 32-byte data key, bound to <paramref name="keyId"/>, with the current master key.</summary>
    (int Version, byte[] Wrapped) Wrap(ReadOnlySpan<byte> dataKey, string keyId);

    /// <summary>Unwraps a data key into <paramref name="dataKey"/> (32 bytes).</summary>
    /// <exception cref="System.Security.Cryptography.CryptographicException">Unknown version, or the wrapped key does not authenticate (wrong key id, altered bytes).</exception>
    void Unwrap(int version, ReadOnlySpan<byte> wrapped, string keyId, Span<byte> dataKey);

    /// <summary>Adds master key v(N+1), durably, and makes it current; returns its version.</summary>
    int AddVersion();
}
