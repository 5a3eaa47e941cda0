using System.Collections.Concurrent;
using System.Security.Cryptography;
using ModelSeal.Pkcs11;
using ModelSeal.Server.Configuration;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace ModelSeal.Server.MasterKeys;

/// <summary>
/// One PKCS#11 token, opened once per process, module path and token label: the module, the slot, the user's login
/// (held by a session kept open for it) and a pool of sessions (one operation per session at a time). Shared by
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
    private readonly ISlot _slot;
    private readonly ISession _main;
    private readonly ConcurrentBag<ISession> _idle = [];
    private int _references;
    private volatile bool _closed;

    private Pkcs11Token((string Module, string Label) key, Pkcs11Module module, ISlot slot, ISession main)
    {
        _key = key;
        Module = module;
        _slot = slot;
        _main = main;
        Label = key.Label;
    }

    /// <summary>The token's label (as configured, MasterKey:TokenLabel).</summary>
    public string Label { get; }

    /// <summary>The module the token is in (its factories, its object lock).</summary>
    public Pkcs11Module Module { get; }

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
        ArgumentNullException.ThrowIfNull(action);
        ObjectDisposedException.ThrowIf(_closed, this);
        if (!_idle.TryTake(out ISession? session))
        {
            try
            {
                session = _slot.OpenSession(SessionType.ReadWrite);
            }
            catch (Pkcs11Exception e)
            {
                throw new CryptographicException($"The PKCS#11 token '{Label}' could not open a session ({e.RV}).", e);
            }
        }

        try
        {
            return action(session);
        }
        catch (Pkcs11Exception e)
        {
            throw new CryptographicException($"The PKCS#11 token '{Label}' refused an operation ({e.RV}).", e);
        }
        finally
        {
            _idle.Add(session);
        }
    }

    /// <summary>
    /// Runs <paramref name="action"/> on a pooled session while holding the module's object lock (creating and
    /// searching token objects, <see cref="Pkcs11Module.ObjectLock"/>).
    /// </summary>
    public T UseLocked<T>(Func<ISession, T> action) => Use(session =>
    {
        lock (Module.ObjectLock)
        {
            return action(session);
        }
    });

    /// <summary>
    /// The protections <see cref="RequiredTrue"/> (and CKA_SENSITIVE, CKA_EXTRACTABLE false) that the object lacks, by
    /// attribute name; empty when it has them all.
    /// </summary>
    public static string[] MissingProtections(ISession session, IObjectHandle handle)
    {
        ArgumentNullException.ThrowIfNull(session);
        List<IObjectAttribute> read = session.GetAttributeValue(handle, [CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE, .. RequiredTrue]);
        var missing = new List<string>();
        if (read[0].CannotBeRead || !read[0].GetValueAsBool())
        {
            missing.Add(nameof(CKA.CKA_SENSITIVE));
        }

        if (read[1].CannotBeRead || read[1].GetValueAsBool())
        {
            missing.Add("CKA_EXTRACTABLE = false");
        }

        for (int i = 0; i < RequiredTrue.Length; i++)
        {
            if (read[2 + i].CannotBeRead || !read[2 + i].GetValueAsBool())
            {
                missing.Add(RequiredTrue[i].ToString());
            }
        }

        return [.. missing];
    }

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

        while (_idle.TryTake(out ISession? session))
        {
            session.Dispose();
        }

        _main.Dispose();
        Module.Release();
    }

    private static Pkcs11Token Open((string, string) key, string modulePath, string tokenLabel, byte[] pin)
    {
        Pkcs11Module module;
        try
        {
            module = Pkcs11Module.Acquire(modulePath);
        }
        catch (Exception e) when (e is Pkcs11Exception or UnmanagedException or DllNotFoundException or IOException or BadImageFormatException)
        {
            CryptographicOperations.ZeroMemory(pin);
            throw new ServerConfigurationException($"The PKCS#11 module '{modulePath}' could not be loaded ({(e is Pkcs11Exception p ? p.RV.ToString() : e.GetType().Name)}); check MasterKey:Pkcs11Module.", e);
        }

        ISession? main = null;
        bool owned = false;
        try
        {
            ISlot slot = module.Library.GetSlotList(SlotsType.WithTokenPresent)
                .FirstOrDefault(s => string.Equals(s.GetTokenInfo().Label.TrimEnd(), tokenLabel, StringComparison.Ordinal))
                ?? throw new ServerConfigurationException($"No token labelled '{tokenLabel}' is present in the PKCS#11 module '{modulePath}'; check MasterKey:TokenLabel (and SOFTHSM2_CONF for SoftHSM2).");
            main = slot.OpenSession(SessionType.ReadWrite);
            try
            {
                main.Login(CKU.CKU_USER, pin);
            }
            catch (Pkcs11Exception e) when (e.RV == CKR.CKR_USER_ALREADY_LOGGED_IN)
            {
                // The same token reached through another path of the module: login state is per application.
            }
            catch (Pkcs11Exception e) when (e.RV is CKR.CKR_PIN_INCORRECT or CKR.CKR_PIN_LEN_RANGE or CKR.CKR_PIN_LOCKED or CKR.CKR_PIN_EXPIRED)
            {
                throw new ServerConfigurationException($"The PKCS#11 token '{tokenLabel}' refused the user PIN ({e.RV}); check the PIN file or variable (MasterKey:PinFile / MasterKey:PinEnvironmentVariable).", e);
            }

            var token = new Pkcs11Token(key, module, slot, main);
            owned = true; // the token owns the session and the module reference from here on
            return token;
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
                main?.Dispose();
                module.Release();
            }
        }
    }
}
