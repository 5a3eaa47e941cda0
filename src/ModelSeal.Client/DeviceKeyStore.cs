using System.Security.Cryptography;
using System.Text;
using ModelSeal.Hpke;

namespace ModelSeal.Client;

/// <summary>
/// Holds this device's HPKE key (P-256), to which the key server seals released model keys, as an
/// <see cref="IHpkeKeyAgreement"/>: released keys are opened through its key agreement only, so the private key need
/// not be in the process. The store owns the returned key: callers must not dispose it.
/// </summary>
/// <remarks>
/// Hardware key stores plug in by implementing this interface and returning their own <see cref="IHpkeKeyAgreement"/>
/// that keeps the private key in hardware: the package ModelSeal.Client.Pkcs11's <c>Pkcs11DeviceKeyStore</c>, a PKCS#11
/// token's non-extractable EC key (<c>CKM_ECDH1_DERIVE</c>); on Android, an EC P-256 key in the Android Keystore with
/// <c>PURPOSE_AGREE_KEY</c> (<c>KeyAgreement</c> "ECDH"); on iOS, a P-256 key in the Secure Enclave
/// (<c>kSecAttrTokenIDSecureEnclave</c>, <c>SecKeyCopyKeyExchangeResult</c>) — the last two as recipes in docs/client.md
/// "Hardware-held device keys". The stores here hold the key in software (<see cref="HpkeKeyPair"/>).
/// </remarks>
public interface IDeviceKeyStore
{
    /// <summary>Returns the device key, creating it on first use.</summary>
    ValueTask<IHpkeKeyAgreement> GetOrCreateAsync(CancellationToken cancellationToken = default);
}

/// <summary>
/// A device key that lives only in memory: each instance (each process) is a new device and uses one of the
/// licence's device slots. For tests and short-lived tools.
/// </summary>
public sealed class InMemoryDeviceKeyStore : IDeviceKeyStore, IDisposable
{
    private readonly HpkeKeyPair _key;

    /// <summary>Creates a store with a new random key pair.</summary>
    public InMemoryDeviceKeyStore()
        : this(HpkeKeyPair.Generate())
    {
    }

    /// <summary>Creates a store holding <paramref name="key"/>; the store takes ownership of it.</summary>
    public InMemoryDeviceKeyStore(HpkeKeyPair key)
    {
        ArgumentNullException.ThrowIfNull(key);
        _key = key;
    }

    /// <inheritdoc />
    public ValueTask<IHpkeKeyAgreement> GetOrCreateAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult<IHpkeKeyAgreement>(_key);
    }

    /// <summary>Releases the key pair.</summary>
    public void Dispose() => _key.Dispose();
}

/// <summary>
/// A device key in an owner-only file (created atomically at first use, mode 0600 on Unix; the directory is created
/// 0700 when missing). A file readable or writable by other users is refused, like a key file.
/// </summary>
/// <remarks>File format: a comment line, <c>modelseal-device-key-v1</c>, <c>private-key: &lt;64 hex digits&gt;</c>.</remarks>
public sealed class FileDeviceKeyStore : IDeviceKeyStore, IDisposable
{
    private const string FormatLine = "modelseal-device-key-v1";
    private const string KeyPrefix = "private-key: ";
    private readonly SemaphoreSlim _lock = new(1, 1);
    private HpkeKeyPair? _key;

    /// <summary>Creates a store for the file at <paramref name="path"/>.</summary>
    public FileDeviceKeyStore(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = System.IO.Path.GetFullPath(path);
    }

    /// <summary>The device key file.</summary>
    public string Path { get; }

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException">The file is malformed or accessible by other users.</exception>
    public async ValueTask<IHpkeKeyAgreement> GetOrCreateAsync(CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _key) is { } cached)
        {
            return cached;
        }

        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _key ??= File.Exists(Path) ? Load() : await CreateAsync(cancellationToken).ConfigureAwait(false);
            return _key;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Releases the key pair.</summary>
    public void Dispose()
    {
        _key?.Dispose();
        _lock.Dispose();
    }

    private async Task<HpkeKeyPair> CreateAsync(CancellationToken cancellationToken)
    {
        OwnerOnly.EnsureDirectory(System.IO.Path.GetDirectoryName(Path)!, "device key directory");
        HpkeKeyPair key = HpkeKeyPair.Generate();
        byte[] scalar = key.ExportPrivateKey();
        byte[] content = GC.AllocateArray<byte>(256, pinned: true);
        try
        {
            string prefix = $"# ModelSeal device key. Secret: it opens every model key released to this device.\n{FormatLine}\n{KeyPrefix}";
            int length = Encoding.ASCII.GetBytes(prefix, content);
            Convert.TryToHexStringLower(scalar, content.AsSpan(length), out int written);
            length += written;
            content[length++] = (byte)'\n';
            try
            {
                await using AtomicFile file = AtomicFile.Create(Path, overwrite: false, ownerOnly: true);
                await file.Stream.WriteAsync(content.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
                await file.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (IOException) when (File.Exists(Path))
            {
                // Another process created it first: use that one.
                key.Dispose();
                return Load();
            }

            return key;
        }
        catch
        {
            key.Dispose();
            throw;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(scalar);
            CryptographicOperations.ZeroMemory(content);
        }
    }

    private HpkeKeyPair Load()
    {
        OwnerOnly.Check(Path, "device key file");
        byte[] content = File.ReadAllBytes(Path);
        byte[] scalar = new byte[32];
        try
        {
            int field = 0;
            bool found = false;
            ReadOnlySpan<byte> all = content;
            foreach (Range range in all.Split((byte)'\n'))
            {
                ReadOnlySpan<byte> line = all[range].TrimEnd((byte)'\r');
                if (line.IsEmpty || line[0] == (byte)'#')
                {
                    continue;
                }

                if (field == 0 && !line.SequenceEqual(Encoding.ASCII.GetBytes(FormatLine)))
                {
                    throw Malformed($"the first line must be '{FormatLine}'");
                }

                if (field == 1)
                {
                    ReadOnlySpan<byte> hex = line.StartsWith("private-key: "u8) ? line["private-key: "u8.Length..] : [];
                    if (hex.Length != 64 || Convert.FromHexString(hex, scalar, out _, out int written) != System.Buffers.OperationStatus.Done || written != 32)
                    {
                        throw Malformed("the second line must be 'private-key: <64 hexadecimal digits>'");
                    }

                    found = true;
                }

                if (field > 1)
                {
                    throw Malformed("it has content after the key line");
                }

                field++;
            }

            if (!found)
            {
                throw Malformed("it is incomplete");
            }

            try
            {
                return HpkeKeyPair.ImportPrivateKey(scalar);
            }
            catch (ModelKeyException e)
            {
                throw new InvalidOperationException($"The device key file '{Path}' does not hold a valid P-256 private key.", e);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(content);
            CryptographicOperations.ZeroMemory(scalar);
        }
    }

    private InvalidOperationException Malformed(string problem) =>
        new($"'{Path}' is not a valid ModelSeal device key file: {problem}. Delete it to create a new device key (the device then counts as a new device).");
}
