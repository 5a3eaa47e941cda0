using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using ModelSeal.Pkcs11;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace ModelSeal.Client.Pkcs11;

/// <summary>
/// One store's connection to its token: a reference to the loaded module, the slot, a session kept open for the
/// user's login, and a pool of further sessions (a PKCS#11 session runs one operation at a time, so concurrent key
/// agreements each take their own). Disposing closes this store's sessions; the token ends the login when the
/// application's last session to it closes (a C_Logout would also log out other stores of the process on that token).
/// </summary>
internal sealed class Pkcs11Sessions : IDisposable
{
    private readonly Pkcs11Module _module;
    private readonly ISlot _slot;
    private readonly ISession _main;
    private readonly ConcurrentBag<ISession> _idle = [];
    private readonly string _token;
    private int _closed;

    private Pkcs11Sessions(Pkcs11Module module, ISlot slot, ISession main, string token)
    {
        _module = module;
        _slot = slot;
        _main = main;
        _token = token;
    }

    /// <summary>The module's factories (attributes, mechanisms).</summary>
    public Pkcs11InteropFactories Factories => _module.Factories;

    /// <summary>
    /// Loads the module, finds the token and logs the user in with the PIN read from the options' file or variable
    /// (zeroed right after). A process that is logged in to the token already (another store) keeps that login.
    /// </summary>
    /// <exception cref="Pkcs11DeviceKeyException">The module, token or PIN is missing or unusable.</exception>
    public static Pkcs11Sessions Open(Pkcs11DeviceKeyOptions options)
    {
        string modulePath = options.ModulePath!;
        if (!File.Exists(modulePath))
        {
            throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.ModuleNotLoadable, $"The PKCS#11 module '{modulePath}' does not exist; check Pkcs11DeviceKeyOptions.ModulePath (the token vendor's PKCS#11 library).");
        }

        byte[] pin = ReadPin(options);
        Pkcs11Module module;
        try
        {
            module = Pkcs11Module.Acquire(modulePath);
        }
        catch (Exception e) when (e is Pkcs11Exception or UnmanagedException or DllNotFoundException or IOException or BadImageFormatException or EntryPointNotFoundException)
        {
            CryptographicOperations.ZeroMemory(pin);
            throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.ModuleNotLoadable, $"The PKCS#11 module '{modulePath}' could not be loaded ({(e is Pkcs11Exception p ? p.RV.ToString() : e.GetType().Name)}): check that Pkcs11DeviceKeyOptions.ModulePath names the token's PKCS#11 library built for this platform ({System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture}).", e);
        }

        ISession? main = null;
        bool owned = false;
        try
        {
            List<ISlot> slots = module.Library.GetSlotList(SlotsType.WithTokenPresent);
            ISlot slot = slots.FirstOrDefault(s => options.SlotId is { } id
                    ? s.SlotId == id
                    : string.Equals(s.GetTokenInfo().Label.TrimEnd(), options.TokenLabel, StringComparison.Ordinal))
                ?? throw new Pkcs11DeviceKeyException(
                    Pkcs11DeviceKeyError.TokenNotFound,
                    $"{options.Token} is not present in the PKCS#11 module '{modulePath}' (present: {Present(slots)}); check Pkcs11DeviceKeyOptions.TokenLabel or SlotId, that the token is inserted (and SOFTHSM2_CONF for SoftHSM2).");
            main = slot.OpenSession(SessionType.ReadWrite);
            try
            {
                main.Login(CKU.CKU_USER, pin);
            }
            catch (Pkcs11Exception e) when (e.RV == CKR.CKR_USER_ALREADY_LOGGED_IN)
            {
                // Another store of this process is logged in to the token: login state is per application.
            }
            catch (Pkcs11Exception e) when (e.RV is CKR.CKR_PIN_INCORRECT or CKR.CKR_PIN_INVALID or CKR.CKR_PIN_LEN_RANGE or CKR.CKR_PIN_LOCKED or CKR.CKR_PIN_EXPIRED)
            {
                string source = options.PinFile is { Length: > 0 } file ? $"the PIN file '{file}'" : $"the environment variable '{options.PinEnvironmentVariable}'";
                throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.PinRejected, $"{options.Token} refused the user PIN ({e.RV}); check {source}. Tokens lock the PIN after a few wrong attempts: do not retry in a loop.", e);
            }

            var sessions = new Pkcs11Sessions(module, slot, main, options.Token);
            owned = true; // the sessions own the main session and the module reference from here on
            return sessions;
        }
        catch (Pkcs11Exception e)
        {
            throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.TokenFailure, $"{options.Token} of the PKCS#11 module '{modulePath}' could not be opened ({e.RV}).", e);
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

    /// <summary>
    /// Runs <paramref name="action"/> on a pooled session; a token error becomes a <see cref="Pkcs11DeviceKeyException"/>
    /// (<see cref="Pkcs11DeviceKeyError.TokenFailure"/>) naming its return value.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The store was disposed.</exception>
    public T Use<T>(Func<ISession, T> action)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _closed) != 0, this);
        if (!_idle.TryTake(out ISession? session))
        {
            try
            {
                session = _slot.OpenSession(SessionType.ReadWrite);
            }
            catch (Pkcs11Exception e)
            {
                throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.TokenFailure, $"{_token} could not open a session ({e.RV}); is the token still present?", e);
            }
        }

        try
        {
            return action(session);
        }
        catch (Pkcs11Exception e)
        {
            throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.TokenFailure, $"{_token} refused an operation on the device key ({e.RV}).", e);
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

    /// <summary>As <see cref="Use"/>, holding the module's object lock (searching and creating token objects).</summary>
    public T UseLocked<T>(Func<ISession, T> action) => Use(session =>
    {
        lock (_module.ObjectLock)
        {
            return action(session);
        }
    });

    /// <summary>Closes this store's sessions and releases the module (the token's objects stay).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        CloseIdle();
        _main.Dispose();
        _module.Release();
    }

    private void CloseIdle()
    {
        while (_idle.TryTake(out ISession? session))
        {
            session.Dispose();
        }
    }

    private static string Present(List<ISlot> slots) =>
        slots.Count == 0 ? "no token" : string.Join(", ", slots.Select(s => $"'{s.GetTokenInfo().Label.TrimEnd()}' in slot {s.SlotId}"));

    /// <summary>The PIN's bytes (UTF-8, surrounding whitespace removed) from the file or variable; the caller zeroes them.</summary>
    private static byte[] ReadPin(Pkcs11DeviceKeyOptions options)
    {
        if (options.PinFile is { Length: > 0 } file)
        {
            byte[] content;
            try
            {
                content = File.ReadAllBytes(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.PinUnavailable, $"The PIN file '{file}' (Pkcs11DeviceKeyOptions.PinFile) cannot be read ({e.GetType().Name}); create it, readable by this user only, holding the token's user PIN.", e);
            }

            try
            {
                ReadOnlySpan<byte> trimmed = content.AsSpan().Trim(" \t\r\n"u8);
                return trimmed.IsEmpty
                    ? throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.PinUnavailable, $"The PIN file '{file}' (Pkcs11DeviceKeyOptions.PinFile) is empty; write the token's user PIN into it.")
                    : trimmed.ToArray();
            }
            finally
            {
                CryptographicOperations.ZeroMemory(content);
            }
        }

        string variable = options.PinEnvironmentVariable!;
        string? value = Environment.GetEnvironmentVariable(variable);
        return string.IsNullOrWhiteSpace(value)
            ? throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.PinUnavailable, $"The environment variable '{variable}' (Pkcs11DeviceKeyOptions.PinEnvironmentVariable) that should hold the token's user PIN is not set.")
            : Encoding.UTF8.GetBytes(value.Trim());
    }
}
