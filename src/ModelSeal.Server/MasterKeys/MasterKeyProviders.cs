using System.Security.Cryptography;
using System.Text;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.MasterKeys;

/// <summary>Validates <see cref="MasterKeyOptions"/> and opens the configured master-key provider.</summary>
internal static class MasterKeyProviders
{
    /// <summary>Checks the options without touching any token (<see cref="ServerOptionsValidator.ValidateMasterKey"/>).</summary>
    /// <exception cref="ServerConfigurationException">The options are incomplete or contradictory.</exception>
    public static void Validate(MasterKeyOptions? options) => ServerOptionsValidator.ValidateMasterKey(options);

    /// <summary>Opens the configured provider (options already validated).</summary>
    public static MasterKeyRing Open(MasterKeyOptions options, string masterKeysPath, bool mayCreate)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!IsPkcs11(options))
        {
            return MasterKeyRing.LoadOrCreate(masterKeysPath, mayCreate);
        }

        byte[] pin = ReadPin(options);
        return new MasterKeyRing(Pkcs11MasterKeyProvider.Open(options.Pkcs11Module!, options.TokenLabel!, options.KeyLabel, pin, mayCreate && options.CreateIfMissing));
    }

    /// <summary>
    /// The PKCS#11 token the options name (<c>MasterKey:Provider = pkcs11</c>), logged in: the one the master keys
    /// opened already in this process, or opened now (reading the PIN). The caller disposes its reference.
    /// </summary>
    public static Pkcs11Token OpenToken(MasterKeyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return Pkcs11Token.Acquire(options.Pkcs11Module!, options.TokenLabel!, () => ReadPin(options));
    }

    /// <summary>True when the options keep the master keys in a PKCS#11 token.</summary>
    public static bool IsPkcs11(MasterKeyOptions options) => string.Equals(options?.Provider, MasterKeyOptions.Pkcs11, StringComparison.OrdinalIgnoreCase);

    /// <summary>The PIN's bytes (UTF-8, surrounding whitespace removed); the caller zeroes them.</summary>
    private static byte[] ReadPin(MasterKeyOptions options)
    {
        if (!string.IsNullOrWhiteSpace(options.PinFile))
        {
            if (!File.Exists(options.PinFile))
            {
                throw new ServerConfigurationException($"The PIN file '{options.PinFile}' (MasterKey:PinFile) does not exist.");
            }

            byte[] content = DataDirectory.ReadSecretFile(options.PinFile);
            try
            {
                ReadOnlySpan<byte> trimmed = content.AsSpan().Trim(" \t\r\n"u8);
                return trimmed.IsEmpty
                    ? throw new ServerConfigurationException($"The PIN file '{options.PinFile}' (MasterKey:PinFile) is empty.")
                    : trimmed.ToArray();
            }
            finally
            {
                CryptographicOperations.ZeroMemory(content);
            }
        }

        string? value = Environment.GetEnvironmentVariable(options.PinEnvironmentVariable!);
        return string.IsNullOrWhiteSpace(value)
            ? throw new ServerConfigurationException($"The environment variable '{options.PinEnvironmentVariable}' (MasterKey:PinEnvironmentVariable) that should hold the PKCS#11 user PIN is not set.")
            : Encoding.UTF8.GetBytes(value.Trim());
    }
}
