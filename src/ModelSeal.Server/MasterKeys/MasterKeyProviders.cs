using System.Security.Cryptography;
using System.Text;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.MasterKeys;

/// <summary>Validates <see cref="MasterKeyOptions"/> and opens the configured master-key provider.</summary>
internal static class MasterKeyProviders
{
    /// <summary>Checks the options without touching any file, module or token.</summary>
    /// <exception cref="ServerConfigurationException">The options are incomplete or contradictory.</exception>
    public static void Validate(MasterKeyOptions? options)
    {
        if (options is null)
        {
            throw new ServerConfigurationException("ServerOptions.MasterKey must not be null (leave it at its default for the file provider).");
        }

        if (string.Equals(options.Provider, MasterKeyOptions.File, StringComparison.OrdinalIgnoreCase))
        {
            return;
        }

        if (!string.Equals(options.Provider, MasterKeyOptions.Pkcs11, StringComparison.OrdinalIgnoreCase))
        {
            throw new ServerConfigurationException($"MasterKey:Provider is '{options.Provider}'; it must be 'file' (master.keys in the data directory) or 'pkcs11' (an HSM token).");
        }

        if (string.IsNullOrWhiteSpace(options.Pkcs11Module))
        {
            throw new ServerConfigurationException("MasterKey:Provider is 'pkcs11' but MasterKey:Pkcs11Module is not set; give the path of the token's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so.");
        }

        if (!File.Exists(options.Pkcs11Module))
        {
            throw new ServerConfigurationException($"The PKCS#11 module '{options.Pkcs11Module}' (MasterKey:Pkcs11Module) does not exist.");
        }

        if (string.IsNullOrWhiteSpace(options.TokenLabel))
        {
            throw new ServerConfigurationException("MasterKey:Provider is 'pkcs11' but MasterKey:TokenLabel is not set; give the label of the token that holds the master keys.");
        }

        if (string.IsNullOrWhiteSpace(options.KeyLabel) || options.KeyLabel.Length > 64 || options.KeyLabel.Any(char.IsControl))
        {
            throw new ServerConfigurationException("MasterKey:KeyLabel must be 1 to 64 printable characters (versions are labelled <KeyLabel>-v1, -v2, …).");
        }

        bool file = !string.IsNullOrWhiteSpace(options.PinFile);
        bool variable = !string.IsNullOrWhiteSpace(options.PinEnvironmentVariable);
        if (file == variable)
        {
            throw new ServerConfigurationException("MasterKey:Provider is 'pkcs11': set exactly one of MasterKey:PinFile (an owner-only file holding the user PIN) and MasterKey:PinEnvironmentVariable (the name of a variable holding it). The PIN itself is never configuration or a command-line argument.");
        }
    }

    /// <summary>Opens the configured provider (options already validated).</summary>
    public static MasterKeyRing Open(MasterKeyOptions options, string masterKeysPath, bool mayCreate)
    {
        if (string.Equals(options.Provider, MasterKeyOptions.File, StringComparison.OrdinalIgnoreCase))
        {
            return MasterKeyRing.LoadOrCreate(masterKeysPath, mayCreate);
        }

        byte[] pin = ReadPin(options);
        return new MasterKeyRing(Pkcs11MasterKeyProvider.Open(options.Pkcs11Module!, options.TokenLabel!, options.KeyLabel, pin, mayCreate && options.CreateIfMissing));
    }

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
