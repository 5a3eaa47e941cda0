using ModelSeal.Server.Configuration;

namespace ModelSeal.Server.Files;

/// <summary>
/// The server's data directory: created owner-only when absent, refused when other users can reach it or any of the
/// files in it that hold secrets.
/// </summary>
internal sealed class DataDirectory
{
    public const string DatabaseFile = "modelseal.db";
    public const string MasterKeysFile = "master.keys";
    public const string SigningKeyFile = "token-signing.key";
    public const string AnswerKeyFile = "answer-signing.key";
    public const string AdminCredentialFile = "admin.credential";
    public const string LockFile = "modelseal.lock";

    private DataDirectory(string path)
    {
        Path = path;
    }

    public string Path { get; }

    public string DatabasePath => System.IO.Path.Combine(Path, DatabaseFile);

    public string MasterKeysPath => System.IO.Path.Combine(Path, MasterKeysFile);

    public string SigningKeyPath => System.IO.Path.Combine(Path, SigningKeyFile);

    public string AnswerKeyPath => System.IO.Path.Combine(Path, AnswerKeyFile);

    /// <summary>Where servers before schema version 4 kept the admin credential: hashed into the database and deleted at start.</summary>
    public string AdminCredentialPath => System.IO.Path.Combine(Path, AdminCredentialFile);

    /// <summary>Opens (creating owner-only when absent) and checks the data directory.</summary>
    public static DataDirectory Open(string path)
    {
        string full;
        try
        {
            full = System.IO.Path.GetFullPath(path);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new ServerConfigurationException($"The data directory '{path}' is not a valid path: {e.Message}", e);
        }

        if (File.Exists(full))
        {
            throw new ServerConfigurationException($"The data directory '{full}' is a file; give the path of a directory (it is created when absent).");
        }

        if (!Directory.Exists(full))
        {
            try
            {
                if (OperatingSystem.IsWindows())
                {
                    Directory.CreateDirectory(full);
                    OwnerOnlyFiles.RestrictOnWindows(full);
                }
                else
                {
                    Directory.CreateDirectory(full, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ServerConfigurationException($"The data directory '{full}' could not be created: {e.Message}", e);
            }
        }

        RequireOwnerOnly(full, "data directory");
        var directory = new DataDirectory(full);
        foreach (string file in new[] { DatabaseFile, DatabaseFile + "-wal", DatabaseFile + "-shm", MasterKeysFile, SigningKeyFile, AnswerKeyFile, AdminCredentialFile, LockFile })
        {
            string filePath = System.IO.Path.Combine(full, file);
            if (File.Exists(filePath))
            {
                RequireOwnerOnly(filePath, "file");
            }
        }

        return directory;
    }

    /// <summary>
    /// Takes the directory's exclusive lock (held until disposed), so that two servers never share a data directory:
    /// each would rotate master keys and count devices without seeing the other.
    /// </summary>
    public DirectoryLock Lock()
    {
        string path = System.IO.Path.Combine(Path, LockFile);
        var options = new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            return new DirectoryLock(new FileStream(path, options));
        }
        catch (IOException e)
        {
            throw new ServerConfigurationException($"The data directory '{Path}' is in use by another ModelSeal server ('{path}' is locked); stop that server first.", e);
        }
    }

    /// <summary>Creates the database file owner-only before SQLite opens it (SQLite gives its -wal and -shm the same mode).</summary>
    public void EnsureDatabaseFile()
    {
        if (File.Exists(DatabasePath))
        {
            return;
        }

        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (new FileStream(DatabasePath, options))
        {
        }
    }

    /// <summary>Writes a secret file atomically and owner-only.</summary>
    public static void WriteSecretFile(string path, ReadOnlySpan<byte> content, bool overwrite)
    {
        using AtomicFile file = AtomicFile.Create(path, overwrite, ownerOnly: true);
        file.Stream.Write(content);
        file.Commit();
    }

    /// <summary>Reads a secret file after checking it is owner-only.</summary>
    public static byte[] ReadSecretFile(string path)
    {
        RequireOwnerOnly(path, "file");
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ServerConfigurationException($"The file '{path}' could not be read: {e.Message}", e);
        }
    }

    private static void RequireOwnerOnly(string path, string what)
    {
        if (OwnerOnlyFiles.Exposure(path) is { } exposure)
        {
            throw new ServerConfigurationException($"The {what} '{path}' is accessible by other users ({exposure}); make it owner-only: {OwnerOnlyFiles.Fix(path)}.");
        }
    }
}

/// <summary>The exclusive lock on a data directory; disposing releases it.</summary>
internal sealed class DirectoryLock(FileStream stream) : IDisposable
{
    public void Dispose() => stream.Dispose();
}
