using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;

namespace ModelSeal.Server.MasterKeys;

/// <summary>
/// The file master-key provider (the default, <c>MasterKey:Provider = file</c>): the versioned 32-byte master keys that wrap every data key (AES-256-GCM, random 12-byte nonce, associated data =
/// the key id). Kept in <c>master.keys</c> as lines <c>v&lt;N&gt; &lt;64 hex digits&gt;</c>; the version the database
/// records wraps new keys (<see cref="MasterKeyRing"/>), the others stay so that anything wrapped with them still opens. Keys live in pinned arrays that
/// <see cref="Dispose"/> zeroes.
/// </summary>
internal sealed class FileMasterKeyProvider : IMasterKeyProvider
{
    public const int KeySize = MasterKeyRing.KeySize;
    public const int NonceSize = MasterKeyRing.NonceSize;
    public const int TagSize = MasterKeyRing.TagSize;
    public const int WrappedSize = MasterKeyRing.WrappedSize;

    private readonly string _path;
    private readonly Lock _rotateLock = new();
    private volatile Dictionary<int, byte[]> _keys;
    private volatile int _latest;
    private volatile bool _disposed;

    private FileMasterKeyProvider(string path, Dictionary<int, byte[]> keys)
    {
        _path = path;
        _keys = keys;
        _latest = keys.Keys.Max();
    }

    /// <inheritdoc/>
    public string Description => $"file {_path}";

    /// <inheritdoc/>
    public int LatestVersion => _latest;

    /// <summary>Loads <c>master.keys</c>, or creates it with a first key (v1) when <paramref name="mayCreate"/>.</summary>
    public static FileMasterKeyProvider LoadOrCreate(string path, bool mayCreate)
    {
        if (!File.Exists(path))
        {
            if (!mayCreate)
            {
                throw new ServerConfigurationException($"The master key file '{path}' is missing, but the database holds data keys wrapped with it; restore it from your backup (without it no model key can be released).");
            }

            var keys = new Dictionary<int, byte[]> { [1] = NewKey() };
            Save(path, keys, overwrite: false);
            return new FileMasterKeyProvider(path, keys);
        }

        byte[] content = DataDirectory.ReadSecretFile(path);
        char[] text = new char[content.Length];
        try
        {
            for (int i = 0; i < content.Length; i++)
            {
                text[i] = (char)content[i];
            }

            return new FileMasterKeyProvider(path, Parse(path, text));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(content);
            Array.Clear(text);
        }
    }

    /// <inheritdoc/>
    public bool Holds(int version) => _keys.ContainsKey(version);

    /// <inheritdoc/>
    public int Refresh() => _latest;

    /// <summary>Wraps a data key with master key <paramref name="version"/>.</summary>
    public byte[] Wrap(int version, ReadOnlySpan<byte> dataKey, string keyId)
    {
        // After Dispose the keys are zeroes: wrapping with them would store a data key anyone can unwrap.
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_keys.TryGetValue(version, out byte[]? key))
        {
            throw new CryptographicException(string.Create(CultureInfo.InvariantCulture, $"Master key v{version} is not in master.keys."));
        }

        byte[] wrapped = new byte[WrappedSize];
        Span<byte> nonce = wrapped.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(key, TagSize);
        aes.Encrypt(nonce, dataKey, wrapped.AsSpan(NonceSize, ModelKey.SizeInBytes), wrapped.AsSpan(NonceSize + ModelKey.SizeInBytes), Encoding.UTF8.GetBytes(keyId));
        return wrapped;
    }

    /// <summary>Unwraps a data key into <paramref name="dataKey"/> (32 bytes).</summary>
    /// <exception cref="CryptographicException">Unknown master key version, or the wrapped key does not authenticate.</exception>
    public void Unwrap(int version, ReadOnlySpan<byte> wrapped, string keyId, Span<byte> dataKey)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_keys.TryGetValue(version, out byte[]? key))
        {
            throw new CryptographicException(string.Create(CultureInfo.InvariantCulture, $"Master key v{version} is not in master.keys."));
        }

        if (wrapped.Length != WrappedSize)
        {
            throw new CryptographicException("A wrapped data key has the wrong size.");
        }

        using var aes = new AesGcm(key, TagSize);
        aes.Decrypt(wrapped[..NonceSize], wrapped.Slice(NonceSize, ModelKey.SizeInBytes), wrapped[(NonceSize + ModelKey.SizeInBytes)..], dataKey, Encoding.UTF8.GetBytes(keyId));
    }

    /// <summary>
    /// Adds master key v(N+1), N the highest version in the file. The file is rewritten atomically before the new key
    /// is used, so a crash never leaves a data key wrapped with a master key that is not on disk.
    /// </summary>
    public int AddVersion()
    {
        lock (_rotateLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var keys = new Dictionary<int, byte[]>(_keys);
            int version = _latest + 1;
            keys[version] = NewKey();
            Save(_path, keys, overwrite: true);
            _keys = keys;
            _latest = version;
            return version;
        }
    }

    /// <summary>Zeroes every master key.</summary>
    public void Dispose()
    {
        _disposed = true;
        foreach (byte[] key in _keys.Values)
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    private static byte[] NewKey()
    {
        byte[] key = GC.AllocateArray<byte>(KeySize, pinned: true);
        RandomNumberGenerator.Fill(key);
        return key;
    }

    private static Dictionary<int, byte[]> Parse(string path, ReadOnlySpan<char> text)
    {
        var keys = new Dictionary<int, byte[]>();
        int lineNumber = 0;
        foreach (Range range in text.Split('\n'))
        {
            lineNumber++;
            ReadOnlySpan<char> line = text[range].Trim();
            if (line.IsEmpty || line[0] == '#')
            {
                continue;
            }

            int space = line.IndexOf(' ');
            ReadOnlySpan<char> hex = space < 0 ? default : line[(space + 1)..].Trim();
            if (space < 2 || line[0] != 'v' ||
                !int.TryParse(line[1..space], NumberStyles.None, CultureInfo.InvariantCulture, out int version) || version < 1 ||
                hex.Length != 2 * KeySize)
            {
                throw Malformed(path, lineNumber, "expected 'v<N> <64 hex digits>'");
            }

            byte[] key = GC.AllocateArray<byte>(KeySize, pinned: true);
            if (Convert.FromHexString(hex, key, out _, out int written) != System.Buffers.OperationStatus.Done || written != KeySize)
            {
                throw Malformed(path, lineNumber, "the key is not 64 hex digits");
            }

            if (!keys.TryAdd(version, key))
            {
                throw Malformed(path, lineNumber, string.Create(CultureInfo.InvariantCulture, $"version v{version} appears twice"));
            }
        }

        return keys.Count > 0 ? keys : throw new ServerConfigurationException($"The master key file '{path}' holds no key; restore it from your backup.");
    }

    private static ServerConfigurationException Malformed(string path, int line, string problem) =>
        new(string.Create(CultureInfo.InvariantCulture, $"The master key file '{path}' is malformed at line {line}: {problem}; restore it from your backup."));

    private static void Save(string path, Dictionary<int, byte[]> keys, bool overwrite)
    {
        int lineLength = 0;
        foreach (int version in keys.Keys)
        {
            lineLength += 1 + version.ToString(CultureInfo.InvariantCulture).Length + 1 + (2 * KeySize) + 1;
        }

        byte[] content = new byte[lineLength];
        char[] hex = new char[2 * KeySize];
        try
        {
            int position = 0;
            foreach (int version in keys.Keys.Order())
            {
                position += Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"v{version} "), content.AsSpan(position));
                Convert.TryToHexStringLower(keys[version], hex, out _);
                position += Encoding.ASCII.GetBytes(hex, content.AsSpan(position));
                content[position++] = (byte)'\n';
            }

            DataDirectory.WriteSecretFile(path, content.AsSpan(0, position), overwrite);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(content);
            Array.Clear(hex);
        }
    }
}
