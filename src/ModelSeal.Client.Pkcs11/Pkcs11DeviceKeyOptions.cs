namespace ModelSeal.Client.Pkcs11;

/// <summary>
/// Where the device key lives in a PKCS#11 token (<see cref="Pkcs11DeviceKeyStore"/>): the module, the token (by label
/// or slot), the key's label, and where the user PIN comes from. The PIN itself is never an option: it is read from a
/// file or an environment variable when the token is opened, and zeroed after the login.
/// </summary>
public sealed class Pkcs11DeviceKeyOptions
{
    /// <summary>The default <see cref="KeyLabel"/>.</summary>
    public const string DefaultKeyLabel = "modelseal-device";

    /// <summary>The path of the token's PKCS#11 module (shared library), e.g. <c>/usr/lib/softhsm/libsofthsm2.so</c>.</summary>
    public string? ModulePath { get; set; }

    /// <summary>The label of the token (set this or <see cref="SlotId"/>).</summary>
    public string? TokenLabel { get; set; }

    /// <summary>The id of the slot that holds the token (set this or <see cref="TokenLabel"/>).</summary>
    public ulong? SlotId { get; set; }

    /// <summary>
    /// The label (<c>CKA_LABEL</c>) of the device key pair in the token, <see cref="DefaultKeyLabel"/> by default: found
    /// there, or generated under it on first use. Give each app its own label when apps share a token.
    /// </summary>
    public string KeyLabel { get; set; } = DefaultKeyLabel;

    /// <summary>A file holding the user PIN (surrounding whitespace ignored; keep it readable by the app's user only). Set this or <see cref="PinEnvironmentVariable"/>.</summary>
    public string? PinFile { get; set; }

    /// <summary>The name of an environment variable holding the user PIN. Set this or <see cref="PinFile"/>.</summary>
    public string? PinEnvironmentVariable { get; set; }

    /// <summary>Checks that the options are complete and not contradictory.</summary>
    /// <exception cref="ArgumentException">An option is missing or contradicts another; the message names it.</exception>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(ModulePath))
        {
            throw new ArgumentException("Pkcs11DeviceKeyOptions.ModulePath is not set: give the path of the token's PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so.", nameof(ModulePath));
        }

        if (string.IsNullOrWhiteSpace(TokenLabel) == (SlotId is null))
        {
            throw new ArgumentException("Set exactly one of Pkcs11DeviceKeyOptions.TokenLabel and SlotId to choose the token.", nameof(TokenLabel));
        }

        if (string.IsNullOrWhiteSpace(KeyLabel))
        {
            throw new ArgumentException("Pkcs11DeviceKeyOptions.KeyLabel is empty: give the label of the device key in the token.", nameof(KeyLabel));
        }

        if (string.IsNullOrWhiteSpace(PinFile) == string.IsNullOrWhiteSpace(PinEnvironmentVariable))
        {
            throw new ArgumentException("Set exactly one of Pkcs11DeviceKeyOptions.PinFile and PinEnvironmentVariable: the user PIN is read from a file or an environment variable, never given as a string.", nameof(PinFile));
        }
    }

    /// <summary>Names the key, the token and the module (never the PIN).</summary>
    public override string ToString() => $"PKCS#11 device key '{KeyLabel}' in {Token} of {ModulePath}";

    /// <summary>The token as messages name it: <c>token 'label'</c> or <c>the token in slot N</c>.</summary>
    internal string Token => TokenLabel is { Length: > 0 } label ? $"token '{label}'" : $"the token in slot {SlotId}";
}
