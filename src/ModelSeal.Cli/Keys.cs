namespace ModelSeal.Cli;

/// <summary>Loads key files with errors that say what to do. Never prints, logs or formats key bytes.</summary>
internal static class Keys
{
    /// <summary>The default key id: "local-" and 16 random lowercase hex digits.</summary>
    public static string NewKeyId() => "local-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));

    /// <summary>Reads the key file at <paramref name="path"/>; failures exit with <see cref="ExitCodes.KeyError"/>.</summary>
    public static ModelKey Load(string path)
    {
        const string CreateHint = "check --key, or create a key file with 'modelseal keygen --out FILE'.";
        if (Directory.Exists(path))
        {
            throw new CliException(ExitCodes.KeyError, $"the key file {ErrorReporter.Quote(path)} is a directory.", CreateHint);
        }

        if (!File.Exists(path))
        {
            throw new CliException(ExitCodes.KeyError, $"the key file {ErrorReporter.Quote(path)} does not exist.", CreateHint);
        }

        try
        {
            return KeyFile.Read(path);
        }
        catch (ModelKeyException e)
        {
            string hint = OpenToOthers(path)
                ? $"make it owner-only: {OwnerOnlyFiles.Fix(path)}"
                : "create a key file with 'modelseal keygen --out FILE', or pass the right one with --key.";
            throw new CliException(ExitCodes.KeyError, e.Message, hint, e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException(ExitCodes.KeyError, $"cannot read the key file {ErrorReporter.Quote(path)}: {e.Message}", "check the path and its permissions.", e);
        }
    }

    /// <summary>Fails with <see cref="ExitCodes.KeyError"/> unless <paramref name="key"/> is the one <paramref name="header"/> names.</summary>
    public static void RequireKeyFor(SealedModelHeader header, ModelKey key, string input, string keyPath)
    {
        if (header.KeyId != key.KeyId)
        {
            throw new CliException(
                ExitCodes.KeyError,
                $"{ErrorReporter.Quote(input)} is sealed with key '{header.KeyId}', but the key file {ErrorReporter.Quote(keyPath)} holds key '{key.KeyId}'.",
                $"pass --key with the key file for key id '{header.KeyId}'.");
        }
    }

    private static bool OpenToOthers(string path)
    {
        try
        {
            return OwnerOnlyFiles.Exposure(path) is not null;
        }
        catch (IOException)
        {
            return false;
        }
    }
}
