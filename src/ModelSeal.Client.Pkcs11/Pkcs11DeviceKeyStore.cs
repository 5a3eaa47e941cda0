using System.Security.Cryptography;
using ModelSeal.Hpke;
using ModelSeal.Pkcs11;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using Net.Pkcs11Interop.HighLevelAPI.Factories;

namespace ModelSeal.Client.Pkcs11;

/// <summary>
/// The device key in a PKCS#11 token (an HSM, a smart card, a TPM through its PKCS#11 module; SoftHSM2 in tests): an EC
/// P-256 key pair labelled <see cref="Pkcs11DeviceKeyOptions.KeyLabel"/>, generated in the token on first use as a
/// private token object that is sensitive, never extractable, and allowed to derive only (no signing, decryption or
/// unwrapping). Every key agreement is done by the token (<c>C_DeriveKey</c>, <c>CKM_ECDH1_DERIVE</c>): the private key
/// is never in the process.
/// </summary>
/// <remarks>
/// <para>The token is opened, and the key found or generated, by the first <see cref="GetOrCreateAsync"/>; a failure
/// there is a <see cref="Pkcs11DeviceKeyException"/> and the next call tries again. A key found under the label is
/// refused unless it is an EC P-256 private key with <c>CKA_SENSITIVE</c>, <c>CKA_ALWAYS_SENSITIVE</c>,
/// <c>CKA_NEVER_EXTRACTABLE</c>, <c>CKA_LOCAL</c> (generated in the token: an imported key's value is known to whoever
/// imported it), <c>CKA_DERIVE</c>, <c>CKA_TOKEN</c> and <c>CKA_PRIVATE</c> true and <c>CKA_EXTRACTABLE</c> false, with
/// its public key beside it (same <c>CKA_ID</c>), which must belong to it (checked by one ECDH against a software key).</para>
/// <para>Thread-safe; concurrent key agreements each take a session of a pool. <see cref="Dispose"/> closes the
/// store's sessions (the key stays in the token); the returned key must not be used afterwards.</para>
/// </remarks>
public sealed class Pkcs11DeviceKeyStore : IDeviceKeyStore, IDisposable
{
    /// <summary>DER of the OID prime256v1 (1.2.840.10045.3.1.7), the <c>CKA_EC_PARAMS</c> of a P-256 key.</summary>
    private static readonly byte[] P256Parameters = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

    /// <summary>What the private key must have set to true besides <c>CKA_SENSITIVE</c> (and <c>CKA_EXTRACTABLE</c> false).</summary>
    private static readonly CKA[] RequiredTrue = [CKA.CKA_ALWAYS_SENSITIVE, CKA.CKA_NEVER_EXTRACTABLE, CKA.CKA_LOCAL, CKA.CKA_DERIVE, CKA.CKA_TOKEN, CKA.CKA_PRIVATE];

    private readonly Pkcs11DeviceKeyOptions _options;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private Pkcs11SessionPool? _sessions;
    private Pkcs11KeyAgreement? _key;
    private bool _disposed;

    /// <summary>Creates a store; nothing touches the token before the first <see cref="GetOrCreateAsync"/>.</summary>
    /// <exception cref="ArgumentException">The options are incomplete (<see cref="Pkcs11DeviceKeyOptions.Validate"/>).</exception>
    public Pkcs11DeviceKeyStore(Pkcs11DeviceKeyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = new Pkcs11DeviceKeyOptions
        {
            ModulePath = options.ModulePath,
            TokenLabel = options.TokenLabel,
            SlotId = options.SlotId,
            KeyLabel = options.KeyLabel,
            PinFile = options.PinFile,
            PinEnvironmentVariable = options.PinEnvironmentVariable,
        };
    }

    /// <summary>The store's sessions once opened (tests inspect and plant objects through them).</summary>
    internal Pkcs11SessionPool? Sessions => _sessions;

    /// <inheritdoc />
    /// <exception cref="Pkcs11DeviceKeyException">The module, token, PIN or key is unusable; <see cref="Pkcs11DeviceKeyException.Error"/> says which.</exception>
    /// <exception cref="ObjectDisposedException">The store was disposed.</exception>
    public async ValueTask<IHpkeKeyAgreement> GetOrCreateAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed), this);
        if (Volatile.Read(ref _key) is { } cached)
        {
            return cached;
        }

        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_key is null)
            {
                Pkcs11SessionPool sessions = Pkcs11DeviceToken.Open(_options);
                try
                {
                    Pkcs11KeyAgreement key = FindOrCreate(sessions, _options);
                    _sessions = sessions;
                    Volatile.Write(ref _key, key);
                }
                catch
                {
                    sessions.Dispose();
                    throw;
                }
            }

            return _key;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Names the key, the token and the module (never the PIN).</summary>
    public override string ToString() => _options.ToString();

    /// <summary>Closes the store's sessions; the key stays in the token.</summary>
    public void Dispose()
    {
        _lock.Wait();
        try
        {
            if (_disposed)
            {
                return;
            }

            Volatile.Write(ref _disposed, true);
            _sessions?.Dispose();
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>
    /// The key agreement of the private key <paramref name="privateKey"/> already in the token (tests: keys imported
    /// from test vectors), with its public key given; checked as a pair like a found key.
    /// </summary>
    internal static Pkcs11KeyAgreement ForHandle(Pkcs11SessionPool sessions, IObjectHandle privateKey, HpkePublicKey publicKey, string description)
    {
        var key = new Pkcs11KeyAgreement(sessions, privateKey, publicKey, description);
        key.CheckPair();
        return key;
    }

    private static Pkcs11KeyAgreement FindOrCreate(Pkcs11SessionPool sessions, Pkcs11DeviceKeyOptions options)
    {
        string description = $"The device key '{options.KeyLabel}' in {options.Token}";
        (IObjectHandle privateKey, HpkePublicKey publicKey) = sessions.UseLocked(session =>
        {
            IObjectAttributeFactory a = sessions.Factories.ObjectAttributeFactory;
            List<IObjectHandle> found = session.FindAllObjects([a.Create(CKA.CKA_CLASS, CKO.CKO_PRIVATE_KEY), a.Create(CKA.CKA_LABEL, options.KeyLabel)]);
            if (found.Count > 1)
            {
                throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.KeyRefused, $"{options.Token} holds {found.Count} private keys labelled '{options.KeyLabel}'; delete all but the device's key (the one the key server registered) or choose another Pkcs11DeviceKeyOptions.KeyLabel.");
            }

            IObjectHandle key = found.Count == 1 ? found[0] : Generate(sessions, session, options.KeyLabel);
            byte[] id = CheckPrivateKey(session, key, description);
            return (key, ReadPublicKey(sessions, session, id, description));
        });
        return ForHandle(sessions, privateKey, publicKey, description);
    }

    /// <summary>Generates the device key pair: token objects sharing a random CKA_ID, the private half derive-only.</summary>
    private static IObjectHandle Generate(Pkcs11SessionPool sessions, ISession session, string label)
    {
        IObjectAttributeFactory a = sessions.Factories.ObjectAttributeFactory;
        byte[] id = RandomNumberGenerator.GetBytes(16);
        List<IObjectAttribute> publicTemplate =
        [
            a.Create(CKA.CKA_TOKEN, true),
            a.Create(CKA.CKA_PRIVATE, false),
            a.Create(CKA.CKA_LABEL, label),
            a.Create(CKA.CKA_ID, id),
            a.Create(CKA.CKA_EC_PARAMS, P256Parameters),
            a.Create(CKA.CKA_VERIFY, false),
            a.Create(CKA.CKA_ENCRYPT, false),
            a.Create(CKA.CKA_WRAP, false),
            a.Create(CKA.CKA_DERIVE, false),
        ];
        List<IObjectAttribute> privateTemplate =
        [
            a.Create(CKA.CKA_TOKEN, true),
            a.Create(CKA.CKA_PRIVATE, true),
            a.Create(CKA.CKA_LABEL, label),
            a.Create(CKA.CKA_ID, id),
            a.Create(CKA.CKA_SENSITIVE, true),
            a.Create(CKA.CKA_EXTRACTABLE, false),
            a.Create(CKA.CKA_DERIVE, true),
            a.Create(CKA.CKA_SIGN, false),
            a.Create(CKA.CKA_DECRYPT, false),
            a.Create(CKA.CKA_UNWRAP, false),
            a.Create(CKA.CKA_MODIFIABLE, false),
        ];
        using IMechanism mechanism = sessions.Factories.MechanismFactory.Create(CKM.CKM_EC_KEY_PAIR_GEN);
        session.GenerateKeyPair(mechanism, publicTemplate, privateTemplate, out _, out IObjectHandle privateKey);
        return privateKey;
    }

    /// <summary>Refuses a private key that is not a protected, derive-capable EC P-256 key; returns its CKA_ID.</summary>
    private static byte[] CheckPrivateKey(ISession session, IObjectHandle key, string description)
    {
        List<IObjectAttribute> read = session.GetAttributeValue(key, [CKA.CKA_KEY_TYPE, CKA.CKA_EC_PARAMS, CKA.CKA_ID]);
        if (read[0].CannotBeRead || read[0].GetValueAsUlong() != (ulong)CKK.CKK_EC ||
            read[1].CannotBeRead || !read[1].GetValueAsByteArray().AsSpan().SequenceEqual(P256Parameters))
        {
            throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.KeyRefused, $"{description} is not an EC P-256 (prime256v1) key; HPKE's DHKEM(P-256) needs one. Choose another Pkcs11DeviceKeyOptions.KeyLabel (a new key is generated under a free label) or delete the object.");
        }

        string[] missing = Pkcs11SessionPool.MissingProtections(session, key, RequiredTrue);
        if (missing.Length > 0)
        {
            throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.KeyRefused, $"{description} lacks {string.Join(", ", missing)}: a device key must be generated in the token as a private, sensitive, never-extractable token object allowed to derive (an extractable or imported key's value can be known outside the token). Delete it, or choose another Pkcs11DeviceKeyOptions.KeyLabel, and let the store generate the key.");
        }

        return read[2].CannotBeRead ? [] : read[2].GetValueAsByteArray() ?? [];
    }

    /// <summary>The public key with the private key's CKA_ID: its CKA_EC_POINT, a DER OCTET STRING holding the 65-byte point.</summary>
    private static HpkePublicKey ReadPublicKey(Pkcs11SessionPool sessions, ISession session, byte[] id, string description)
    {
        IObjectAttributeFactory a = sessions.Factories.ObjectAttributeFactory;
        List<IObjectHandle> found = id.Length == 0 ? [] : session.FindAllObjects([a.Create(CKA.CKA_CLASS, CKO.CKO_PUBLIC_KEY), a.Create(CKA.CKA_ID, id)]);
        if (found.Count != 1)
        {
            throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.KeyRefused, $"{description} has {(found.Count == 0 ? "no public key" : $"{found.Count} public keys")} beside it (a public key object with the same CKA_ID). Delete the private key to let a new device key be generated (the device then counts as a new device), or restore its public key.");
        }

        List<IObjectAttribute> read = session.GetAttributeValue(found[0], [CKA.CKA_EC_POINT]);
        byte[] point = read[0].CannotBeRead ? [] : read[0].GetValueAsByteArray() ?? [];
        ReadOnlySpan<byte> encoded = point.Length == 67 && point[0] == 0x04 && point[1] == 65 ? point.AsSpan(2) : point; // DER OCTET STRING, or a raw point
        try
        {
            return HpkePublicKey.Import(encoded);
        }
        catch (ModelKeyException e)
        {
            throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.KeyRefused, $"{description}: its public key's CKA_EC_POINT is not an uncompressed P-256 point ({e.Message})", e);
        }
    }
}
