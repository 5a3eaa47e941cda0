namespace ModelSeal.Client;

/// <summary>Owner-only checks for the client's secret files and directories (Unix permissions; a no-op on Windows).</summary>
internal static class OwnerOnly
{
    private const UnixFileMode Others = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>Throws when <paramref name="path"/> (a file or directory) is accessible by other users.</summary>
    public static void Check(string path, string what)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        UnixFileMode mode = File.GetUnixFileMode(path);
        if ((mode & Others) != 0)
        {
            string fix = Directory.Exists(path) ? "chmod 700" : "chmod 600";
            throw new InvalidOperationException(
                $"The {what} '{path}' is accessible by other users (mode {Convert.ToString((int)mode, 8)}); it must be owner-only. Run: {fix} '{path}'");
        }
    }

    /// <summary>Creates <paramref name="directory"/> owner-only when it is missing; checks it otherwise.</summary>
    public static void EnsureDirectory(string directory, string what)
    {
        if (Directory.Exists(directory))
        {
            Check(directory, what);
            return;
        }

        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(directory);
        }
        else
        {
            Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    /// <summary>Reads a small owner-only text file (at most <paramref name="maxBytes"/>).</summary>
    public static string ReadSmallText(string path, string what, int maxBytes)
    {
        Check(path, what);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
        byte[] buffer = new byte[maxBytes + 1];
        int length = stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        if (length > maxBytes)
        {
            throw new InvalidOperationException($"The {what} '{path}' is larger than {maxBytes} bytes.");
        }

        return System.Text.Encoding.UTF8.GetString(buffer, 0, length);
    }
}
