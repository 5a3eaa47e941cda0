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

    /// <summary>
    /// The highest version the provider holds (0 when none). Not necessarily the one that wraps: that is the version
    /// the database records (<see cref="MasterKeyRing"/>); a higher one found here is never adopted on its own.
    /// </summary>
    int LatestVersion { get; }

    /// <summary>Whether the provider holds version <paramref name="version"/>.</summary>
    bool Holds(int version);

    /// <summary>
    /// Looks again for versions added elsewhere (another instance sharing the token) and returns
    /// <see cref="LatestVersion"/>; the file provider, read once at start, returns it as it is.
    /// </summary>
    int Refresh();

    /// <summary>Wraps a 32-byte data key, bound to <paramref name="keyId"/>, with master key <paramref name="version"/>.</summary>
    /// <exception cref="System.Security.Cryptography.CryptographicException">The provider does not hold that version.</exception>
    byte[] Wrap(int version, ReadOnlySpan<byte> dataKey, string keyId);

    /// <summary>Unwraps a data key into <paramref name="dataKey"/> (32 bytes).</summary>
    /// <exception cref="System.Security.Cryptography.CryptographicException">Unknown version, or the wrapped key does not authenticate (wrong key id, altered bytes).</exception>
    void Unwrap(int version, ReadOnlySpan<byte> wrapped, string keyId, Span<byte> dataKey);

    /// <summary>Adds master key v(N+1), N the <see cref="LatestVersion"/>, durably; returns its version.</summary>
    int AddVersion();
}
