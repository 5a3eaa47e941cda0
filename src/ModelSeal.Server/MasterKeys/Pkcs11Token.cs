using System.Security.Cryptography;
using ModelSeal.Pkcs11;
using ModelSeal.Server.Configuration;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace ModelSeal.Server.MasterKeys;

/// <summary>
/// One PKCS#11 token, opened once per process, module path and token label: the module, the slot, the user's login
/// and a pool of sessions (<see cref="Pkcs11SessionPool"/>: one operation per session at a time). Shared by
/// everything that keeps keys in the token — the master keys (<see cref="Pkcs11MasterKeyProvider"/>) and the signing
/// keys (<see cref="Security.Pkcs11SigningKey"/>) — so the user logs in once; reference-counted: each
/// <see cref="Acquire"/> is matched by one <see cref="Dispose"/>, and the last one closes the sessions.
/// </summary>
internal sealed class Pkcs11Token : IDisposable
{
    /// <summary>
    /// What every key the server keeps in a token must have set: generated inside this token (an imported key's
    /// value is known to whoever imported it), never extractable nor readable since, a private token object.
    /// Besides these, CKA_SENSITIVE must be true and CKA_EXTRACTABLE false.
    /// </summary>
    public static readonly CKA[] RequiredTrue = [CKA.CKA_LOCAL, CKA.CKA_NEVER_EXTRACTABLE, CKA.CKA_ALWAYS_SENSITIVE, CKA.CKA_PRIVATE, CKA.CKA_TOKEN];

    private static readonly Dictionary<(string Module, string Label), Pkcs11Token> Opened = [];
    private static readonly Lock OpenLock = new();

    private readonly (string Module, string Label) _key;
    private readonly Pkcs11SessionPool _pool;
    private int _references;
    private volatile bool _closed;

    private Pkcs11Token((string Module, string Label) key, Pkcs11SessionPool pool)
    {
        _key = key;
        _pool = pool;
        Label = key.Label;
    }

    /// <summary>The token's label (as configured, MasterKey:TokenLabel).</summary>
    public string Label { get; }

    /// <summary>The module the token is in (its factories, its object lock).</summary>
    public Pkcs11Module Module => _pool.Module;

    /// <summary>
    /// The token <paramref name="tokenLabel"/> of the module <paramref name="modulePath"/>, logged in: the one this
    /// process has open already, or opened now with the user PIN <paramref name="readPin"/> gives (called only then;
    /// its bytes are zeroed before this returns).
    /// </summary>
    /// <exception cref="ServerConfigurationException">The module, token or PIN is missing or unusable.</exception>
    public static Pkcs11Token Acquire(string modulePath, string tokenLabel, Func<byte[]> readPin)
    {
        ArgumentNullException.ThrowIfNull(modulePath);
        ArgumentNullException.ThrowIfNull(readPin);
        (string, string) key = (Path.GetFullPath(modulePath), tokenLabel);
        lock (OpenLock)
        {
            if (Opened.TryGetValue(key, out Pkcs11Token? open))
            {
                open._references++;
                return open;
            }

            Pkcs11Token token = Open(key, modulePath, tokenLabel, readPin());
            token._references = 1;
            Opened[key] = token;
            return token;
        }
    }

    /// <summary>Takes another reference to this open token (released by its own <see cref="Dispose"/>).</summary>
    public Pkcs11Token AddReference()
    {
        lock (OpenLock)
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            _references++;
            return this;
        }
    }

    /// <summary>Runs <paramref name="action"/> on a pooled session of this token; token errors become <see cref="CryptographicException"/>s.</summary>
    public T Use<T>(Func<ISession, T> action)
    {
        ObjectDisposedException.ThrowIf(_closed, this);
        return _pool.Use(action);
    }

    /// <summary>
    /// Runs <paramref name="action"/> on a pooled session while holding the module's object lock (creating and
    /// searching token objects, <see cref="Pkcs11Module.ObjectLock"/>).
    /// </summary>
    public T UseLocked<T>(Func<ISession, T> action)
    {
        ObjectDisposedException.ThrowIf(_closed, this);
        return _pool.UseLocked(action);
    }

    /// <summary>
    /// The protections <see cref="RequiredTrue"/> (and CKA_SENSITIVE, CKA_EXTRACTABLE false) that the object lacks, by
    /// attribute name; empty when it has them all.
    /// </summary>
    public static string[] MissingProtections(ISession session, IObjectHandle handle) => Pkcs11SessionPool.MissingProtections(session, handle, RequiredTrue);

    /// <summary>Releases this reference; the last one closes the sessions (the token's objects stay) and releases the module.</summary>
    public void Dispose()
    {
        lock (OpenLock)
        {
            if (_closed || --_references > 0)
            {
                return;
            }

            _closed = true;
            Opened.Remove(_key);
        }

        _pool.Dispose();
    }

    private static Pkcs11Token Open((string, string) key, string modulePath, string tokenLabel, byte[] pin)
    {
        Pkcs11Module module;
        try
        {
            module = Pkcs11Module.Acquire(modulePath);
        }
        catch (Exception e) when (Pkcs11SessionPool.IsLoadFailure(e))
        {
            CryptographicOperations.ZeroMemory(pin);
            throw new ServerConfigurationException($"The PKCS#11 module '{modulePath}' could not be loaded ({(e is Pkcs11Exception p ? p.RV.ToString() : e.GetType().Name)}); check MasterKey:Pkcs11Module.", e);
        }

        bool owned = false;
        try
        {
            ISlot slot = module.Library.GetSlotList(SlotsType.WithTokenPresent)
                .FirstOrDefault(s => string.Equals(s.GetTokenInfo().Label.TrimEnd(), tokenLabel, StringComparison.Ordinal))
                ?? throw new ServerConfigurationException($"No token labelled '{tokenLabel}' is present in the PKCS#11 module '{modulePath}'; check MasterKey:TokenLabel (and SOFTHSM2_CONF for SoftHSM2).");
            Pkcs11SessionPool pool = Pkcs11SessionPool.LogIn(module, slot, pin, (opening, e) => new CryptographicException(
                opening ? $"The PKCS#11 token '{tokenLabel}' could not open a session ({e.RV})." : $"The PKCS#11 token '{tokenLabel}' refused an operation ({e.RV}).",
                e));
            owned = true; // the pool owns the module reference from here on
            return new Pkcs11Token(key, pool);
        }
        catch (Pkcs11Exception e) when (Pkcs11SessionPool.IsPinError(e.RV))
        {
            throw new ServerConfigurationException($"The PKCS#11 token '{tokenLabel}' refused the user PIN ({e.RV}); check the PIN file or variable (MasterKey:PinFile / MasterKey:PinEnvironmentVariable).", e);
        }
        catch (Pkcs11Exception e)
        {
            throw new ServerConfigurationException($"The PKCS#11 token '{tokenLabel}' could not be used ({e.RV}).", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(pin);
            if (!owned)
            {
                module.Release();
            }
        }
    }
}
