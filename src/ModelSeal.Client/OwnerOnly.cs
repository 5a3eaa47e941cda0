using ModelSeal;

namespace ModelSeal.Client;

/// <summary>Owner-only checks for the client's secret files and directories (the rule of <see cref="OwnerOnlyFiles"/>).</summary>
internal static class OwnerOnly
{
    /// <summary>Throws when <paramref name="path"/> (a file or directory) is accessible by other users.</summary>
    public static void Check(string path, string what)
    {
        if (OwnerOnlyFiles.Exposure(path) is { } exposure)
        {
            throw new InvalidOperationException($"The {what} '{path}' is accessible by other users ({exposure}); it must be owner-only. Run: {OwnerOnlyFiles.Fix(path)}");
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
            OwnerOnlyFiles.RestrictOnWindows(directory);
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
