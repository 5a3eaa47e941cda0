using System.Security.Cryptography;
using System.Text;
using ModelSeal.Pkcs11;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace ModelSeal.Client.Pkcs11;

/// <summary>Opens the token the device key options name, logged in, as a <see cref="Pkcs11SessionPool"/>.</summary>
internal static class Pkcs11DeviceToken
{
    /// <summary>
    /// Loads the module, finds the token and logs the user in with the PIN read from the options' file or variable
    /// (zeroed right after). A process that is logged in to the token already (another store) keeps that login.
    /// </summary>
    /// <exception cref="Pkcs11DeviceKeyException">The module, token or PIN is missing or unusable.</exception>
    public static Pkcs11SessionPool Open(Pkcs11DeviceKeyOptions options)
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
        catch (Exception e) when (Pkcs11SessionPool.IsLoadFailure(e))
        {
            CryptographicOperations.ZeroMemory(pin);
            throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.ModuleNotLoadable, $"The PKCS#11 module '{modulePath}' could not be loaded ({(e is Pkcs11Exception p ? p.RV.ToString() : e.GetType().Name)}): check that Pkcs11DeviceKeyOptions.ModulePath names the token's PKCS#11 library built for this platform ({System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture}).", e);
        }

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
            string token = options.Token;
            Pkcs11SessionPool pool = Pkcs11SessionPool.LogIn(module, slot, pin, (opening, e) => new Pkcs11DeviceKeyException(
                Pkcs11DeviceKeyError.TokenFailure,
                opening ? $"{token} could not open a session ({e.RV}); is the token still present?" : $"{token} refused an operation on the device key ({e.RV}).",
                e));
            owned = true; // the pool owns the module reference from here on
            return pool;
        }
        catch (Pkcs11Exception e) when (Pkcs11SessionPool.IsPinError(e.RV))
        {
            string source = options.PinFile is { Length: > 0 } file ? $"the PIN file '{file}'" : $"the environment variable '{options.PinEnvironmentVariable}'";
            throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.PinRejected, $"{options.Token} refused the user PIN ({e.RV}); check {source}. Tokens lock the PIN after a few wrong attempts: do not retry in a loop.", e);
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
                module.Release();
            }
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
