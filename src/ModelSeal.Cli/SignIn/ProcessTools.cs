using System.Diagnostics;
using System.Text;

namespace ModelSeal.Oidc;

/// <summary>
/// Finding and running Node.js's tools (node, npm) and the provider (provider.mjs) of tests/oidc-provider. Shared source, compiled into the test
/// harness (ModelSeal.Server.Tests: <c>Services.RequireTool</c>, <c>NodeProject</c>) and into the CLI
/// (<c>modelseal demo --sign-in</c>), as <see cref="OidcCodeFlow"/> is.
/// </summary>
internal static class ProcessTools
{
    /// <summary>
    /// The full path of the program <paramref name="name"/> in the directories of <paramref name="path"/> (a PATH value;
    /// on Windows <c>name.exe</c> or <c>name.cmd</c>), or null when none holds it.
    /// </summary>
    public static string? FindOnPath(string name, string? path)
    {
        string[] names = OperatingSystem.IsWindows() ? [name + ".exe", name + ".cmd"] : [name];
        foreach (string directory in (path ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            foreach (string file in names)
            {
                string candidate = Path.Combine(directory, file);
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }
        }

        return null;
    }

    /// <summary>
    /// An exclusive lock on <paramref name="path"/> (flock on Unix), polled until another process releases it or
    /// <paramref name="timeout"/> passes (then the <see cref="IOException"/> of the last attempt).
    /// </summary>
    public static async Task<FileStream> LockAsync(string path, TimeSpan timeout, CancellationToken cancellationToken)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                // Another process holds it (an install under way): poll until it lets go.
                await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="fileName"/> in <paramref name="directory"/> with its standard input closed and returns its
    /// exit code and output (standard output, then standard error).
    /// </summary>
    /// <exception cref="TimeoutException">It did not finish within <paramref name="timeout"/> (it was killed).</exception>
    public static async Task<(int ExitCode, string Output)> RunAsync(string fileName, IReadOnlyList<string> arguments, string directory, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        ProcessStartInfo start = Redirected(fileName, directory);
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(start) ?? throw new InvalidOperationException($"{fileName} did not start.");
        process.StandardInput.Close();
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        Task<string> output = process.StandardOutput.ReadToEndAsync(limit.Token);
        Task<string> error = process.StandardError.ReadToEndAsync(limit.Token);
        try
        {
            await process.WaitForExitAsync(limit.Token).ConfigureAwait(false);
            return (process.ExitCode, await output.ConfigureAwait(false) + await error.ConfigureAwait(false));
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            throw new TimeoutException($"{Path.GetFileName(fileName)} {string.Join(' ', arguments)} did not finish within {timeout}.");
        }
    }

    /// <summary>
    /// Starts <c>node provider.mjs</c> in <paramref name="directory"/> (tests/oidc-provider or a copy of it) with
    /// <paramref name="options"/> and <c>--exit-on-stdin-close</c>; every line it prints goes to <paramref name="log"/>.
    /// <c>Ready</c> completes with the issuer of its <c>ready URL</c> line, or fails when it exits before that line.
    /// </summary>
    public static (Process Process, Task<string> Ready) StartProvider(string node, string directory, IEnumerable<string> options, Action<string> log)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(log);
        ProcessStartInfo start = Redirected(node, directory);
        start.ArgumentList.Add("provider.mjs");
        foreach (string option in options)
        {
            start.ArgumentList.Add(option);
        }

        start.ArgumentList.Add("--exit-on-stdin-close");
        var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            log(e.Data);
            const string Marker = "ready ";
            if (e.Data.StartsWith(Marker, StringComparison.Ordinal))
            {
                ready.TrySetResult(e.Data[Marker.Length..].Trim());
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                log(e.Data);
            }
        };
        process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException("provider.mjs exited before it was ready."));
        if (!process.Start())
        {
            process.Dispose();
            throw new InvalidOperationException($"{node} did not start.");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return (process, ready.Task);
    }

    /// <summary>
    /// Stops a provider started by <see cref="StartProvider"/>: closing its standard input is the portable SIGTERM
    /// (<c>--exit-on-stdin-close</c>); it is killed when it has not exited within <paramref name="timeout"/>. Returns
    /// true when it exited by itself, false when it had to be killed.
    /// </summary>
    public static async Task<bool> StopProviderAsync(Process process, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(process);
        if (process.HasExited)
        {
            return true;
        }

        process.StandardInput.Close();
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            return false;
        }
    }

    /// <summary>A start for <paramref name="fileName"/> in <paramref name="directory"/> with every stream redirected (UTF-8).</summary>
    private static ProcessStartInfo Redirected(string fileName, string directory) => new(fileName)
    {
        WorkingDirectory = directory,
        RedirectStandardInput = true,
        RedirectStandardOutput = true,
        RedirectStandardError = true,
        UseShellExecute = false,
        StandardOutputEncoding = Encoding.UTF8,
        StandardErrorEncoding = Encoding.UTF8,
    };
}
