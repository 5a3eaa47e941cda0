using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ModelSeal.Pkcs11;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Storage;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using Net.Pkcs11Interop.HighLevelAPI.Factories;
using Net.Pkcs11Interop.HighLevelAPI.MechanismParams;

namespace ModelSeal.Server.MasterKeys;

/// <summary>
/// Master keys inside a PKCS#11 token (<c>MasterKey:Provider = pkcs11</c>): each version is an AES-256 secret key
/// object labelled <c>&lt;label&gt;-v&lt;N&gt;</c>, generated in the token with <c>CKA_SENSITIVE = true</c> and
/// <c>CKA_EXTRACTABLE = false</c>, so its value never leaves it. Data keys are wrapped by the token with
/// <c>CKM_AES_GCM</c> (random 12-byte IV, the key id as AAD, 128-bit tag): the stored bytes are IV || ciphertext || tag,
/// the same <see cref="MasterKeyRing.WrappedSize"/> bytes as the file provider. The module, the login and the session
/// pool are the <see cref="Pkcs11Token"/>'s, shared with the signing keys kept in the same token.
/// </summary>
internal sealed class Pkcs11MasterKeyProvider : IMasterKeyProvider
{
    private readonly Pkcs11Token _token;
    private readonly Lock _rotateLock = new();
    private readonly string _keyLabel;
    private volatile Dictionary<int, IObjectHandle> _keys;
    private volatile int _latest;
    private bool _disposed;

    private Pkcs11MasterKeyProvider(Pkcs11Token token, string keyLabel, Dictionary<int, IObjectHandle> keys)
    {
        _token = token;
        _keyLabel = keyLabel;
        _keys = keys;
        _latest = keys.Count == 0 ? 0 : keys.Keys.Max();
    }

    /// <inheritdoc/>
    public string Description => $"pkcs11 token '{_token.Label}' key '{_keyLabel}'";

    /// <inheritdoc/>
    public int LatestVersion => _latest;

    /// <summary>The label of master-key version <paramref name="version"/>.</summary>
    public static string VersionLabel(string keyLabel, int version) => string.Create(CultureInfo.InvariantCulture, $"{keyLabel}-v{version}");

    /// <summary>
    /// Loads the PKCS#11 module, finds the token, logs in (or uses this process's login to it) and finds the key
    /// versions; creates v1 when there is none and <paramref name="mayCreate"/>. The PIN is zeroed before this returns.
    /// </summary>
    /// <exception cref="ServerConfigurationException">The module, token, PIN or keys are missing or unusable.</exception>
    public static Pkcs11MasterKeyProvider Open(string modulePath, string tokenLabel, string keyLabel, byte[] pin, bool mayCreate)
    {
        ArgumentNullException.ThrowIfNull(pin);
        try
        {
            return Open(Pkcs11Token.Acquire(modulePath, tokenLabel, () => pin), keyLabel, mayCreate);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(pin);
        }
    }

    /// <summary>
    /// Finds the key versions in <paramref name="token"/>, creating v1 when there is none and
    /// <paramref name="mayCreate"/>. Takes over the reference to the token (released when this fails or is disposed).
    /// </summary>
    /// <exception cref="ServerConfigurationException">The keys are missing or unusable.</exception>
    public static Pkcs11MasterKeyProvider Open(Pkcs11Token token, string keyLabel, bool mayCreate)
    {
        ArgumentNullException.ThrowIfNull(token);
        Pkcs11MasterKeyProvider? provider = null;
        try
        {
            Dictionary<int, IObjectHandle> keys = FindVersions(token, keyLabel);
            if (keys.Count == 0 && !mayCreate)
            {
                throw new ServerConfigurationException($"The PKCS#11 token '{token.Label}' holds no master key labelled '{VersionLabel(keyLabel, 1)}' (or later), but the database holds data keys wrapped with one (or MasterKey:CreateIfMissing is false); check MasterKey:TokenLabel and MasterKey:KeyLabel, or restore the token from its backup.");
            }

            provider = new Pkcs11MasterKeyProvider(token, keyLabel, keys);
            if (keys.Count == 0)
            {
                try
                {
                    provider.AddVersion();
                }
                catch (CryptographicException e)
                {
                    throw new ServerConfigurationException($"The PKCS#11 token '{token.Label}' could not generate the master key '{VersionLabel(keyLabel, 1)}': {e.Message}", e);
                }
            }

            return provider;
        }
        catch (Exception e)
        {
            if (provider is null)
            {
                token.Dispose();
            }
            else
            {
                provider.Dispose();
            }

            if (e is CryptographicException { InnerException: Pkcs11Exception p })
            {
                throw new ServerConfigurationException($"The PKCS#11 token '{token.Label}' could not be used ({p.RV}).", e);
            }

            throw;
        }
    }

    /// <inheritdoc/>
    public bool Holds(int version) => _keys.ContainsKey(version);

    /// <inheritdoc/>
    public byte[] Wrap(int version, ReadOnlySpan<byte> dataKey, string keyId)
    {
        if (!_keys.TryGetValue(version, out IObjectHandle? key))
        {
            throw new CryptographicException($"Master key {VersionLabel(_keyLabel, version)} is not in the PKCS#11 token '{_token.Label}'.");
        }

        byte[] wrapped = new byte[MasterKeyRing.WrappedSize];
        byte[] iv = new byte[MasterKeyRing.NonceSize];
        RandomNumberGenerator.Fill(iv);
        byte[] plain = GC.AllocateArray<byte>(dataKey.Length, pinned: true);
        dataKey.CopyTo(plain);
        try
        {
            byte[] sealedKey = Use(session =>
            {
                using IMechanism mechanism = Gcm(iv, keyId);
                return session.Encrypt(mechanism, key, plain);
            });
            if (sealedKey.Length != ModelKey.SizeInBytes + MasterKeyRing.TagSize)
            {
                throw new CryptographicException("The PKCS#11 token returned a wrapped key of an unexpected size.");
            }

            iv.CopyTo(wrapped, 0);
            sealedKey.CopyTo(wrapped, MasterKeyRing.NonceSize);
            return wrapped;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }
    }

    /// <inheritdoc/>
    public void Unwrap(int version, ReadOnlySpan<byte> wrapped, string keyId, Span<byte> dataKey)
    {
        // A version this instance has not seen was added by another instance sharing the token: look again.
        if (!_keys.TryGetValue(version, out IObjectHandle? key) && (version <= _latest || Refresh() < version || !_keys.TryGetValue(version, out key)))
        {
            throw new CryptographicException($"Master key {VersionLabel(_keyLabel, version)} is not in the PKCS#11 token '{_token.Label}'.");
        }

        if (wrapped.Length != MasterKeyRing.WrappedSize)
        {
            throw new CryptographicException("A wrapped data key has the wrong size.");
        }

        byte[] iv = wrapped[..MasterKeyRing.NonceSize].ToArray();
        byte[] sealedKey = wrapped[MasterKeyRing.NonceSize..].ToArray();
        byte[] plain;
        try
        {
            plain = Use(session =>
            {
                using IMechanism mechanism = Gcm(iv, keyId);
                return session.Decrypt(mechanism, key, sealedKey);
            });
        }
        catch (CryptographicException e) when (e.InnerException is Pkcs11Exception { RV: CKR.CKR_ENCRYPTED_DATA_INVALID or CKR.CKR_ENCRYPTED_DATA_LEN_RANGE or CKR.CKR_FUNCTION_FAILED or CKR.CKR_GENERAL_ERROR })
        {
            // What tokens return when the GCM tag does not verify (SoftHSM2: CKR_GENERAL_ERROR or CKR_ENCRYPTED_DATA_INVALID);
            // session, login and device errors stay plain CryptographicExceptions naming the return value.
            throw new AuthenticationTagMismatchException("A wrapped data key does not authenticate under its master key and key id.", e);
        }

        try
        {
            if (plain.Length != dataKey.Length)
            {
                throw new CryptographicException("The PKCS#11 token returned an unwrapped key of an unexpected size.");
            }

            plain.CopyTo(dataKey);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }
    }

    /// <summary>
    /// Generates <c>&lt;label&gt;-v(N+1)</c>, N the latest version in the token, inside the token (a token object, so
    /// durable before anything is wrapped with it).
    /// </summary>
    public int AddVersion()
    {
        lock (_rotateLock)
        {
            int version = Refresh() + 1;
            string label = VersionLabel(_keyLabel, version);
            IObjectAttributeFactory a = _token.Module.Factories.ObjectAttributeFactory;
            var attributes = new List<IObjectAttribute>
            {
                a.Create(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
                a.Create(CKA.CKA_KEY_TYPE, CKK.CKK_AES),
                a.Create(CKA.CKA_VALUE_LEN, (ulong)MasterKeyRing.KeySize),
                a.Create(CKA.CKA_LABEL, label),
                a.Create(CKA.CKA_ID, Encoding.UTF8.GetBytes(label)),
                a.Create(CKA.CKA_TOKEN, true),
                a.Create(CKA.CKA_PRIVATE, true),
                a.Create(CKA.CKA_SENSITIVE, true),
                a.Create(CKA.CKA_EXTRACTABLE, false),
                a.Create(CKA.CKA_MODIFIABLE, false),
                a.Create(CKA.CKA_ENCRYPT, true),
                a.Create(CKA.CKA_DECRYPT, true),
                a.Create(CKA.CKA_WRAP, false),
                a.Create(CKA.CKA_UNWRAP, false),
                a.Create(CKA.CKA_SIGN, false),
                a.Create(CKA.CKA_VERIFY, false),
                a.Create(CKA.CKA_DERIVE, false),
            };
            IObjectHandle handle = _token.UseLocked(session =>
            {
                using IMechanism generate = _token.Module.Factories.MechanismFactory.Create(CKM.CKM_AES_KEY_GEN);
                return session.GenerateKey(generate, attributes);
            });
            _keys = new Dictionary<int, IObjectHandle>(_keys) { [version] = handle };
            _latest = version;
            return version;
        }
    }

    /// <summary>
    /// Finds the versions in the token again: other server instances sharing the token (docs/deploy.md "Several
    /// instances") may have added one. Runs before every wrap (<see cref="MasterKeyRing"/>) and rotation, and when an
    /// unwrap names a version this instance does not know; releases, which only unwrap known versions, never pay for it.
    /// </summary>
    public int Refresh()
    {
        lock (_rotateLock)
        {
            Dictionary<int, IObjectHandle> found = FindVersions(_token, _keyLabel);
            if (found.Count > 0 && found.Keys.Max() > _latest)
            {
                _keys = found;
                _latest = found.Keys.Max();
            }

            return _latest;
        }
    }

    /// <summary>The handle of a version (tests read its attributes).</summary>
    internal IObjectHandle Handle(int version) => _keys[version];

    /// <summary>Runs <paramref name="action"/> on a pooled session of this token (tests inspect the keys).</summary>
    internal T Use<T>(Func<ISession, T> action)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _token.Use(action);
    }

    /// <summary>Releases the token (the token's objects stay).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _token.Dispose();
    }

    private IMechanism Gcm(byte[] iv, string keyId)
    {
        ICkGcmParams parameters = _token.Module.Factories.MechanismParamsFactory.CreateCkGcmParams(iv, MasterKeyRing.NonceSize * 8, Encoding.UTF8.GetBytes(keyId), MasterKeyRing.TagSize * 8);
        return _token.Module.Factories.MechanismFactory.Create(CKM.CKM_AES_GCM, parameters);
    }

    private static Dictionary<int, IObjectHandle> FindVersions(Pkcs11Token token, string keyLabel) =>
        token.UseLocked(session => FindVersionsLocked(token.Module.Factories, session, token.Label, keyLabel));

    private static Dictionary<int, IObjectHandle> FindVersionsLocked(Pkcs11InteropFactories factories, ISession session, string tokenLabel, string keyLabel)
    {
        IObjectAttributeFactory a = factories.ObjectAttributeFactory;
        List<IObjectHandle> objects = session.FindAllObjects([a.Create(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY), a.Create(CKA.CKA_KEY_TYPE, CKK.CKK_AES)]);
        var keys = new Dictionary<int, IObjectHandle>();
        string prefix = keyLabel + "-v";
        foreach (IObjectHandle handle in objects)
        {
            List<IObjectAttribute> read = session.GetAttributeValue(handle, [CKA.CKA_LABEL, CKA.CKA_VALUE_LEN]);
            string label = read[0].CannotBeRead ? string.Empty : read[0].GetValueAsString();
            if (!label.StartsWith(prefix, StringComparison.Ordinal) ||
                !int.TryParse(label.AsSpan(prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int version) || version < 1 ||
                !string.Equals(VersionLabel(keyLabel, version), label, StringComparison.Ordinal))
            {
                continue;
            }

            // Generated in this token, never extractable nor readable since, a private token object: a key imported with
            // a value someone knows (CKA_LOCAL false), or ever exposed, is no master key, whatever its label says.
            string[] missing = Pkcs11Token.MissingProtections(session, handle);
            if (missing.Length > 0)
            {
                throw new ServerConfigurationException($"The master key '{label}' in the PKCS#11 token '{tokenLabel}' lacks {string.Join(", ", missing)}: it was not generated inside the token as a sensitive, never-extractable, always-sensitive private token object (an imported key's value is known to whoever imported it). Remove it; the server generates its own master keys (docs/deploy.md).");
            }

            if (read[1].CannotBeRead || read[1].GetValueAsUlong() != MasterKeyRing.KeySize)
            {
                throw new ServerConfigurationException($"The master key '{label}' in the PKCS#11 token '{tokenLabel}' is not an AES-256 key.");
            }

            if (!keys.TryAdd(version, handle))
            {
                throw new ServerConfigurationException($"The PKCS#11 token '{tokenLabel}' holds two keys labelled '{label}'; remove the one that wraps nothing.");
            }
        }

        return keys;
    }
}
