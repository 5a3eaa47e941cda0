namespace ModelSeal.TestKit;

/// <summary>Files only their owner may read, as ModelSeal requires for credentials and keys.</summary>
public static class OwnerOnlyFile
{
    /// <summary>Writes <paramref name="content"/> to <paramref name="path"/> and makes it owner-only (0600 on Unix).</summary>
    public static void Write(string path, string content)
    {
        File.WriteAllText(path, content);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }
}
