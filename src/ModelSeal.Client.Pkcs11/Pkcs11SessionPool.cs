using System.Collections.Concurrent;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using Net.Pkcs11Interop.HighLevelAPI.Factories;

namespace ModelSeal.Pkcs11;

/// <summary>
/// One user's sessions on a token: a session kept open for the login, and a pool of further sessions (a PKCS#11
/// session runs one operation at a time, so concurrent operations each take their own). Owns one reference to its
/// <see cref="Pkcs11Module"/>. Disposing closes the sessions (the token's objects stay) and releases the module; the
/// token ends the login when the process's last session to it closes (a C_Logout would also log out other users of
/// the token in this process). Shared source, like <see cref="Pkcs11Module"/>: the key server's token and the client's
/// PKCS#11 device key store are built on it, each turning token errors into its own exceptions.
/// </summary>
internal sealed class Pkcs11SessionPool : IDisposable
{
    private readonly ISlot _slot;
    private readonly ISession _main;
    private readonly ConcurrentBag<ISession> _idle = [];
    private readonly Func<bool, Pkcs11Exception, Exception> _failure;
    private int _closed;

    private Pkcs11SessionPool(Pkcs11Module module, ISlot slot, ISession main, Func<bool, Pkcs11Exception, Exception> failure)
    {
        Module = module;
        _slot = slot;
        _main = main;
        _failure = failure;
    }

    /// <summary>The module the token is in (its factories, its object lock).</summary>
    public Pkcs11Module Module { get; }

    /// <summary>The module's factories (attributes, mechanisms).</summary>
    public Pkcs11InteropFactories Factories => Module.Factories;

    /// <summary>
    /// Opens a read-write session on <paramref name="slot"/> and logs the user in with <paramref name="pin"/> (a process
    /// logged in already keeps its login). On success the pool takes over the caller's reference to
    /// <paramref name="module"/>. <paramref name="failure"/> turns a token error of <see cref="Use"/> into the caller's
    /// exception: its first argument is true when a new session could not be opened, false when an operation failed.
    /// </summary>
    /// <exception cref="Pkcs11Exception">The token refused the session or the login (<see cref="IsPinError"/> tells a PIN problem).</exception>
    public static Pkcs11SessionPool LogIn(Pkcs11Module module, ISlot slot, byte[] pin, Func<bool, Pkcs11Exception, Exception> failure)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(slot);
        ISession main = slot.OpenSession(SessionType.ReadWrite);
        try
        {
            main.Login(CKU.CKU_USER, pin);
        }
        catch (Pkcs11Exception e) when (e.RV == CKR.CKR_USER_ALREADY_LOGGED_IN)
        {
            // The same token reached through another user in this process: login state is per application.
        }
        catch
        {
            main.Dispose();
            throw;
        }

        return new Pkcs11SessionPool(module, slot, main, failure);
    }

    /// <summary>True for the return values of a login refused because of the PIN (incorrect, invalid, locked, expired).</summary>
    public static bool IsPinError(CKR rv) => rv is CKR.CKR_PIN_INCORRECT or CKR.CKR_PIN_INVALID or CKR.CKR_PIN_LEN_RANGE or CKR.CKR_PIN_LOCKED or CKR.CKR_PIN_EXPIRED;

    /// <summary>True for the exceptions of a module that cannot be loaded (<see cref="Pkcs11Module.Acquire"/>).</summary>
    public static bool IsLoadFailure(Exception e) =>
        e is Pkcs11Exception or UnmanagedException or DllNotFoundException or IOException or BadImageFormatException or EntryPointNotFoundException;

    /// <summary>
    /// The protections a key object lacks, by attribute name (empty when it has them all): <c>CKA_SENSITIVE</c> true,
    /// <c>CKA_EXTRACTABLE</c> false, and each of <paramref name="requiredTrue"/> true. An attribute the token does not
    /// report counts as lacking.
    /// </summary>
    public static string[] MissingProtections(ISession session, IObjectHandle handle, IReadOnlyList<CKA> requiredTrue)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(requiredTrue);
        List<IObjectAttribute> read = session.GetAttributeValue(handle, [CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE, .. requiredTrue]);
        var missing = new List<string>();
        if (read[0].CannotBeRead || !read[0].GetValueAsBool())
        {
            missing.Add(nameof(CKA.CKA_SENSITIVE));
        }

        if (read[1].CannotBeRead || read[1].GetValueAsBool())
        {
            missing.Add("CKA_EXTRACTABLE = false");
        }

        for (int i = 0; i < requiredTrue.Count; i++)
        {
            if (read[2 + i].CannotBeRead || !read[2 + i].GetValueAsBool())
            {
                missing.Add(requiredTrue[i].ToString());
            }
        }

        return [.. missing];
    }

    /// <summary>Runs <paramref name="action"/> on a pooled session; a token error becomes the failure's exception.</summary>
    /// <exception cref="ObjectDisposedException">The pool was disposed.</exception>
    public T Use<T>(Func<ISession, T> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _closed) != 0, this);
        if (!_idle.TryTake(out ISession? session))
        {
            try
            {
                session = _slot.OpenSession(SessionType.ReadWrite);
            }
            catch (Pkcs11Exception e)
            {
                throw _failure(true, e);
            }
        }

        try
        {
            return action(session);
        }
        catch (Pkcs11Exception e)
        {
            throw _failure(false, e);
        }
        finally
        {
            _idle.Add(session);
            if (Volatile.Read(ref _closed) != 0)
            {
                CloseIdle(); // disposed while this operation ran
            }
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

    /// <summary>Closes the sessions (the token's objects stay) and releases the module.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        CloseIdle();
        _main.Dispose();
        Module.Release();
    }

    private void CloseIdle()
    {
        while (_idle.TryTake(out ISession? session))
        {
            session.Dispose();
        }
    }
}
