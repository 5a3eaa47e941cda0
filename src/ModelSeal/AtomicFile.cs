namespace ModelSeal;

/// <summary>
/// Writes a file atomically: the content goes to a temporary file beside the target, which replaces the target only
/// on <see cref="CommitAsync"/>. Disposing without committing deletes the temporary file, so a failed or cancelled
/// write leaves nothing behind and never a partial target.
/// </summary>
public sealed class AtomicFile : IAsyncDisposable, IDisposable
{
    private readonly string _tempPath;
    private readonly bool _overwrite;
    private bool _committed;

    private AtomicFile(string path, string tempPath, FileStream stream, bool overwrite)
    {
        Path = path;
        _tempPath = tempPath;
        Stream = stream;
        _overwrite = overwrite;
    }

    /// <summary>The final path.</summary>
    public string Path { get; }

    /// <summary>The stream to write the content to.</summary>
    public FileStream Stream { get; }

    /// <summary>
    /// Starts writing <paramref name="path"/>. Fails at once with <see cref="IOException"/> when the target exists and
    /// <paramref name="overwrite"/> is false. On Unix the file is created with owner-only permissions when
    /// <paramref name="ownerOnly"/> is set.
    /// </summary>
    public static AtomicFile Create(string path, bool overwrite, bool ownerOnly = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = System.IO.Path.GetFullPath(path);
        if (!overwrite && (File.Exists(full) || Directory.Exists(full)))
        {
            throw new IOException($"The output file '{path}' already exists.");
        }

        string directory = System.IO.Path.GetDirectoryName(full)!;
        if (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"The output directory '{directory}' does not exist.");
        }

        string temp = System.IO.Path.Combine(directory, $".{System.IO.Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            Share = FileShare.None,
            BufferSize = 0,
        };
        if (ownerOnly && !OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return new AtomicFile(full, temp, new FileStream(temp, options), overwrite);
    }

    /// <summary>Flushes the content to disk and moves it into place.</summary>
    public async Task CommitAsync(CancellationToken cancellationToken = default)
    {
        await Stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        Commit();
    }

    /// <inheritdoc cref="CommitAsync"/>
    public void Commit()
    {
        Stream.Flush(flushToDisk: true);
        Stream.Dispose();
        File.Move(_tempPath, Path, _overwrite);
        _committed = true;
    }

    /// <summary>Deletes the temporary file unless the write was committed.</summary>
    public async ValueTask DisposeAsync()
    {
        await Stream.DisposeAsync().ConfigureAwait(false);
        DeleteTemp();
    }

    /// <inheritdoc cref="DisposeAsync"/>
    public void Dispose()
    {
        Stream.Dispose();
        DeleteTemp();
    }

    private void DeleteTemp()
    {
        if (!_committed)
        {
            File.Delete(_tempPath);
        }
    }
}
