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
            RequireKeyFileFormat(path);
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

    /// <summary>
    /// Fails unless the file starts like a key file (its first line that is not a comment is the format line): a file
    /// that is not a key file at all is called that, before any complaint about its permissions.
    /// </summary>
    private static void RequireKeyFileFormat(string path)
    {
        const int MaxSize = 4096;
        byte[] content = GC.AllocateArray<byte>(MaxSize + 1, pinned: true);
        try
        {
            int length;
            using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0))
            {
                length = stream.ReadAtLeast(content, content.Length, throwOnEndOfStream: false);
            }

            ReadOnlySpan<byte> text = content.AsSpan(0, length);
            bool formatLine = false;
            foreach (Range range in text.Split((byte)'\n'))
            {
                ReadOnlySpan<byte> line = text[range].TrimEnd((byte)'\r');
                if (!line.IsEmpty && line[0] != (byte)'#')
                {
                    formatLine = line.SequenceEqual("modelseal-key-v1"u8);
                    break;
                }
            }

            if (length > MaxSize || !formatLine)
            {
                throw new CliException(
                    ExitCodes.KeyError,
                    $"{ErrorReporter.Quote(path)} is not a ModelSeal key file: {(length > MaxSize ? $"it is larger than {MaxSize} bytes" : "it does not start with the line 'modelseal-key-v1'")}.",
                    "pass --key with a key file made by 'modelseal keygen --out FILE' (a sealed model or a credential file is not a key).");
            }
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(content);
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
