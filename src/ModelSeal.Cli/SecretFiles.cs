namespace ModelSeal.Cli;

/// <summary>
/// Reads small secret files (the admin credential, a licence credential) as the key files are read: refused when other
/// users may read or write them, with a hint that says how to fix it. The content is never printed.
/// </summary>
internal static class SecretFiles
{
    /// <summary>More than a credential ever is; a larger file is not a credential file.</summary>
    private const int MaxBytes = 4096;

    /// <summary>The trimmed text of the secret file at <paramref name="path"/>; failures exit with <see cref="ExitCodes.KeyError"/>.</summary>
    /// <param name="path">The file.</param>
    /// <param name="what">What the file holds, for messages ("the admin credential file").</param>
    /// <param name="hint">What to do when the file cannot be read.</param>
    public static string ReadCredential(string path, string what, string hint)
    {
        try
        {
            if (OwnerOnlyFiles.Exposure(path) is { } exposure)
            {
                throw new CliException(ExitCodes.KeyError, $"{what} {ErrorReporter.Quote(path)} is accessible by other users ({exposure}); a credential must be owner-only.", $"make it owner-only: {OwnerOnlyFiles.Fix(path)}");
            }

            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
            byte[] content = new byte[MaxBytes + 1];
            int length = stream.ReadAtLeast(content, content.Length, throwOnEndOfStream: false);
            return length > MaxBytes
                ? throw new CliException(ExitCodes.KeyError, $"{what} {ErrorReporter.Quote(path)} is larger than {MaxBytes} bytes: not a credential file.", hint)
                : System.Text.Encoding.UTF8.GetString(content, 0, length).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException(ExitCodes.KeyError, $"cannot read {what} {ErrorReporter.Quote(path)}: {e.Message}", hint, e);
        }
    }
}
