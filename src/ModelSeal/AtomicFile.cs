using Microsoft.Win32.SafeHandles;

namespace ModelSeal;

/// <summary>
/// Writes a file atomically: the target appears, complete and flushed to disk, only on <see cref="CommitAsync"/>.
/// Disposing without committing leaves nothing behind, and never a partial target.
/// </summary>
/// <remarks>
/// <para>
/// On Linux the content goes to an unnamed file (<c>open(directory, O_TMPFILE)</c>) in the target's directory,
/// which gets its name with <c>linkat</c> only once complete: until then no file-system name refers to it, so
/// however the process ends (a signal, <c>SIGKILL</c>, a crash, a power cut) it leaves nothing. With
/// <c>overwrite</c>, since <c>linkat</c> cannot replace an existing file, the complete file is linked to a fresh
/// hidden name and then renamed over the target (one atomic <c>rename</c>): other processes see either the old or the
/// new file, and a process killed between the two calls leaves the complete new file under the hidden name, which
/// the next write of the same target removes (below).
/// </para>
/// <para>
/// Elsewhere, and on file systems without <c>O_TMPFILE</c>, the content goes to a hidden temporary file beside the
/// target, <c>.NAME.PID.HOST.RANDOM.modelseal-tmp</c>, renamed into place on commit and deleted on dispose and by
/// <see cref="AbandonAll"/>; a process killed outright leaves it behind.
/// </para>
/// <para>
/// Stale files: every <see cref="Create(string, bool, bool)"/> first deletes the hidden files of earlier writes of the same target that
/// can no longer be in use: named as above for the same NAME, from this host and PID namespace (HOST), owned by this
/// user (checked on Linux), and whose process (PID) no longer runs. Files of live processes, of other users or
/// hosts, and any other file are left alone.
/// </para>
/// </remarks>
internal sealed class AtomicFile : IAsyncDisposable, IDisposable
{
    /// <summary>For tests only: set to 1 to use a named temporary file even where <c>O_TMPFILE</c> works.</summary>
    internal const string NamedTemporaryVariable = "MODELSEAL_TEST_NAMED_TEMPORARY";

    private static readonly Lock Pending = new();
    private static readonly HashSet<AtomicFile> PendingFiles = [];
    private static bool s_abandoned;

    private readonly string? _tempPath;
    private readonly bool _overwrite;
    private bool _committed;

    private AtomicFile(string path, string? tempPath, FileStream stream, bool overwrite)
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

    /// <summary>True when the content goes to an unnamed (<c>O_TMPFILE</c>) file; false for a named temporary file.</summary>
    internal bool IsUnnamed => _tempPath is null;

    /// <summary>
    /// Starts writing <paramref name="path"/>. Fails at once with <see cref="IOException"/> when the target exists and
    /// <paramref name="overwrite"/> is false. The file is created owner-only (<see cref="OwnerOnlyFiles"/>) when
    /// <paramref name="ownerOnly"/> is set.
    /// </summary>
    public static AtomicFile Create(string path, bool overwrite, bool ownerOnly = false) =>
        Create(path, overwrite, ownerOnly, allowUnnamed: Environment.GetEnvironmentVariable(NamedTemporaryVariable) != "1");

    /// <inheritdoc cref="Create(string, bool, bool)"/>
    /// <param name="path">The target.</param>
    /// <param name="overwrite">Whether an existing target may be replaced.</param>
    /// <param name="ownerOnly">Owner-only permissions (Unix mode, Windows access-control list).</param>
    /// <param name="allowUnnamed">False to use a named temporary file even where <c>O_TMPFILE</c> works (tests).</param>
    internal static AtomicFile Create(string path, bool overwrite, bool ownerOnly, bool allowUnnamed)
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

        string name = System.IO.Path.GetFileName(full);
        TemporaryNames.RemoveStale(directory, name);
        UnixFileMode mode = ownerOnly
            ? UnixFileMode.UserRead | UnixFileMode.UserWrite
            : UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;
        if (allowUnnamed && LinuxFileCalls.TryOpenUnnamed(directory, mode) is { } handle)
        {
            return Register(() => new AtomicFile(full, tempPath: null, new FileStream(handle, FileAccess.Write, bufferSize: 0), overwrite));
        }

        string temp = System.IO.Path.Combine(directory, TemporaryNames.New(name));
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            Share = FileShare.Delete, // so that AbandonAll can delete it while it is open (Windows)
            BufferSize = 0,
        };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = mode;
        }

        // Created under the lock, so that AbandonAll either comes first (and nothing is created) or deletes it.
        return Register(() =>
        {
            var stream = new FileStream(temp, options);
            if (ownerOnly)
            {
                OwnerOnlyFiles.RestrictOnWindows(temp);
            }

            return new AtomicFile(full, temp, stream, overwrite);
        });
    }

    /// <summary>
    /// For a process that is about to exit at once (a repeated Ctrl+C): deletes the temporary files of every write in
    /// this process that is not committed, and makes their commits fail. A commit already under way completes first.
    /// </summary>
    internal static void AbandonAll()
    {
        lock (Pending)
        {
            s_abandoned = true;
            foreach (AtomicFile file in PendingFiles)
            {
                try
                {
                    file.DeleteTemp();
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Best effort while exiting; the next write of the same target removes it (TemporaryNames.RemoveStale).
                }
            }

            PendingFiles.Clear();
        }
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
        if (_tempPath is not null)
        {
            Stream.Dispose(); // Windows cannot move an open file
        }

        lock (Pending)
        {
            if (s_abandoned)
            {
                throw new OperationCanceledException("The process is exiting; the output was not written.");
            }

            if (_tempPath is not null)
            {
                File.Move(_tempPath, Path, _overwrite);
            }
            else if (!_overwrite)
            {
                LinuxFileCalls.Link(Stream.SafeFileHandle, Path);
            }
            else
            {
                LinkOver(Stream.SafeFileHandle, Path);
            }

            _committed = true;
            PendingFiles.Remove(this);
        }

        Stream.Dispose();
    }

    /// <summary>Deletes the temporary file unless the write was committed.</summary>
    public async ValueTask DisposeAsync()
    {
        await Stream.DisposeAsync().ConfigureAwait(false);
        Abandon();
    }

    /// <inheritdoc cref="DisposeAsync"/>
    public void Dispose()
    {
        Stream.Dispose();
        Abandon();
    }

    private static AtomicFile Register(Func<AtomicFile> create)
    {
        lock (Pending)
        {
            if (s_abandoned)
            {
                throw new OperationCanceledException("The process is exiting; the output was not written.");
            }

            AtomicFile file = create();
            PendingFiles.Add(file);
            return file;
        }
    }

    // Replaces the target with the complete unnamed file: linked to a fresh hidden name, then renamed over the target.
    private static void LinkOver(SafeFileHandle handle, string path)
    {
        string hidden = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(path)!, TemporaryNames.New(System.IO.Path.GetFileName(path)));
        LinuxFileCalls.Link(handle, hidden);
        try
        {
            File.Move(hidden, path, overwrite: true);
        }
        catch
        {
            File.Delete(hidden);
            throw;
        }
    }

    private void Abandon()
    {
        lock (Pending)
        {
            if (!_committed)
            {
                DeleteTemp();
                PendingFiles.Remove(this);
            }
        }
    }

    private void DeleteTemp()
    {
        if (_tempPath is not null)
        {
            File.Delete(_tempPath);
        }
    }
}
