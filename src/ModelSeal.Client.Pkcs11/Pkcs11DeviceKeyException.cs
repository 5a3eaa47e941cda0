namespace ModelSeal.Client.Pkcs11;

/// <summary>Why the PKCS#11 device key could not be opened or used.</summary>
public enum Pkcs11DeviceKeyError
{
    /// <summary>The PKCS#11 module (shared library) could not be loaded or initialised: check the module path.</summary>
    ModuleNotLoadable = 1,

    /// <summary>No token with the configured label (or slot) is present in the module.</summary>
    TokenNotFound,

    /// <summary>The user PIN could not be read: the PIN file or the environment variable is missing or empty.</summary>
    PinUnavailable,

    /// <summary>The token refused the user PIN (incorrect, locked, expired or of a wrong length).</summary>
    PinRejected,

    /// <summary>
    /// An object under the key label is not usable as the device key: not an EC P-256 private key, extractable or ever
    /// readable, not generated in the token, not allowed to derive, without its public key, or there are two.
    /// </summary>
    KeyRefused,

    /// <summary>The token failed an operation (session, key generation, key agreement); the message names its return value.</summary>
    TokenFailure,
}

/// <summary>
/// The PKCS#11 device key could not be opened or used. <see cref="Error"/> says why; the message says what to do. It
/// names the module, token and key label, never the PIN or key material.
/// </summary>
public sealed class Pkcs11DeviceKeyException : Exception
{
    /// <summary>Creates an exception with error <see cref="Pkcs11DeviceKeyError.TokenFailure"/>.</summary>
    public Pkcs11DeviceKeyException()
        : this("The PKCS#11 device key is unavailable.")
    {
    }

    /// <summary>Creates an exception with error <see cref="Pkcs11DeviceKeyError.TokenFailure"/>.</summary>
    public Pkcs11DeviceKeyException(string message)
        : this(Pkcs11DeviceKeyError.TokenFailure, message)
    {
    }

    /// <summary>Creates an exception with error <see cref="Pkcs11DeviceKeyError.TokenFailure"/>.</summary>
    public Pkcs11DeviceKeyException(string message, Exception? innerException)
        : this(Pkcs11DeviceKeyError.TokenFailure, message, innerException)
    {
    }

    /// <summary>Creates an exception with <paramref name="error"/>.</summary>
    public Pkcs11DeviceKeyException(Pkcs11DeviceKeyError error, string message, Exception? innerException = null)
        : base(message, innerException) => Error = error;

    /// <summary>Why the device key is unavailable.</summary>
    public Pkcs11DeviceKeyError Error { get; }
}
