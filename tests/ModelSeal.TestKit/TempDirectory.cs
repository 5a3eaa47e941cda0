namespace ModelSeal.TestKit;

/// <summary>A new, unique temporary directory (owner-only on Unix), deleted with everything in it on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    /// <param name="prefix">The start of the directory's name, to tell whose it is (e.g. <c>modelseal-cli-tests-</c>).</param>
    public TempDirectory(string prefix = "modelseal-tests-")
    {
        // CreateTempSubdirectory makes the directory with mode 0700 on Unix.
        Path = Directory.CreateTempSubdirectory(prefix).FullName;
    }

    public string Path { get; }

    /// <summary>A path inside the directory (nothing is created).</summary>
    public string Sub(params string[] names) => System.IO.Path.Combine([Path, .. names]);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: a file a test still holds open (Windows) or made read-only must not fail the test.
        }
    }
}
