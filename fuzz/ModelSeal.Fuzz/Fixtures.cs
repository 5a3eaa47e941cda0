using ModelSeal.Hpke;

namespace ModelSeal.Fuzz;

/// <summary>
/// The fixed secrets the harnesses open their inputs with, so that the fuzzer gets past the key check and the key
/// commitment. The data key is the one of tests/vectors/modelseal (so those vectors are seeds that decrypt); the
/// device key is a fixed test scalar. Test values only: nothing is protected by them.
/// </summary>
internal static class Fixtures
{
    public const string KeyId = "test-key-1";
    public const string ModelId = "fuzz-model";
    public const string Version = "1.0.0";
    public const string Subject = "fuzz-subject";

    /// <summary>"Now" for the lease target: before the seed leases expire.</summary>
    public static readonly DateTimeOffset Now = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>When the seed leases expire.</summary>
    public static readonly DateTimeOffset LeaseExpiresAt = new(2031, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static readonly byte[] KeyBytes = Convert.FromHexString("ba90f7bf9a655a83818ff6d82b091d4cd32607dccd2de78f2ac1b07d4cf70f08");
    private static readonly byte[] DevicePrivateKey = Convert.FromHexString("4f1b2a5d7e3c9a8b6d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e");

    /// <summary>A new instance of the fixed data key (the caller disposes it).</summary>
    public static ModelKey Key() => ModelKey.Import(KeyBytes, KeyId);

    /// <summary>A new instance of the fixed device key pair (the caller disposes it).</summary>
    public static HpkeKeyPair DeviceKey() => HpkeKeyPair.ImportPrivateKey(DevicePrivateKey);

    /// <summary>
    /// A file of the repository, found upwards from the harness's own directory (its build output, or the instrumented
    /// copy in fuzz/out/bin), else from the working directory (fuzz/run runs everything from the repository's root,
    /// wherever FUZZ_OUT puts the copy): the attestation targets read their fixed trust and contexts from tests/attestation.
    /// </summary>
    public static string RepositoryFile(params string[] parts)
    {
        foreach (string start in (string[])[AppContext.BaseDirectory, Directory.GetCurrentDirectory()])
        {
            for (DirectoryInfo? directory = new(start); directory is not null; directory = directory.Parent)
            {
                if (File.Exists(Path.Combine(directory.FullName, "fuzz", "run")))
                {
                    return Path.Combine([directory.FullName, .. parts]);
                }
            }
        }

        throw new InvalidOperationException($"Neither the harness ({AppContext.BaseDirectory}) nor the working directory is inside the repository (no fuzz/run above them).");
    }

    /// <summary>A scratch directory for the file targets: in memory (/dev/shm) where there is one, owner-only.</summary>
    public static string ScratchDirectory(string target)
    {
        string root = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        string directory = Path.Combine(root, $"modelseal-fuzz-{Environment.ProcessId}-{target}");
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(directory);
        }
        else
        {
            Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        return directory;
    }

    /// <summary>Writes <paramref name="data"/> to <paramref name="path"/>, owner-only (as the parsers require).</summary>
    public static void WriteOwnerOnly(string path, byte[] data)
    {
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using var file = new FileStream(path, options);
        file.Write(data);
    }
}
