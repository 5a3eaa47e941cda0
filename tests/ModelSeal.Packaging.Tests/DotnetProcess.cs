using System.Diagnostics;
using System.Text;

namespace ModelSeal.Packaging.Tests;

/// <summary>What a child process printed and returned.</summary>
public sealed record ProcessResult(string Command, int ExitCode, string Stdout, string Stderr)
{
    /// <summary>The command, exit code and both outputs (each cut to its last 20,000 characters), for assertion messages.</summary>
    public override string ToString() =>
        $"$ {Command}\nexit {ExitCode}\n--- stdout ---\n{Tail(Stdout)}\n--- stderr ---\n{Tail(Stderr)}";

    private static string Tail(string text) => text.Length <= 20_000 ? text : "…" + text[^20_000..];
}

/// <summary>Runs <c>dotnet</c> and installed tools as child processes, each with a timeout.</summary>
internal static class DotnetProcess
{
    /// <summary>The <c>dotnet</c> host running the tests' build: DOTNET_HOST_PATH (set by the SDK), else the one on PATH.</summary>
    public static string Host { get; } = FindHost();

    /// <summary>
    /// Runs <paramref name="fileName"/> and returns its exit code and output. A process still running after
    /// <paramref name="timeout"/> is killed (with its children) and the test fails with what it printed so far.
    /// </summary>
    public static async Task<ProcessResult> RunAsync(string fileName, IEnumerable<string> arguments, string workingDirectory, TimeSpan timeout, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // The test runs inside `dotnet test`, whose MSBuild variables would point a child build at the outer one's
        // MSBuild instance; a child `dotnet` finds its own.
        foreach (string name in start.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }

        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        if (environment is not null)
        {
            foreach ((string name, string value) in environment)
            {
                start.Environment[name] = value;
            }
        }

        string command = fileName + " " + string.Join(' ', arguments);
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (stdout) { stdout.AppendLine(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (stderr) { stderr.AppendLine(e.Data); } } };
        var watch = Stopwatch.StartNew();
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var cancellation = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancellation.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            ProcessResult partial = Snapshot(command, -1, stdout, stderr);
            throw new TimeoutException($"{command} did not finish within {timeout.TotalSeconds:0} s; killed.\n{partial}");
        }

        // WaitForExitAsync returns after the redirected streams reached end of file, so the output is complete.
        ProcessResult result = Snapshot(command, process.ExitCode, stdout, stderr);
        TestContext.Current.SendDiagnosticMessage($"{command}: exit {result.ExitCode} after {watch.Elapsed.TotalSeconds:0.0} s");
        return result;
    }

    private static ProcessResult Snapshot(string command, int exitCode, StringBuilder stdout, StringBuilder stderr)
    {
        lock (stdout)
        {
            lock (stderr)
            {
                return new ProcessResult(command, exitCode, stdout.ToString(), stderr.ToString());
            }
        }
    }

    private static string FindHost()
    {
        string? host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host))
        {
            return host;
        }

        foreach (string directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(directory, OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException("The dotnet host is neither in DOTNET_HOST_PATH nor on PATH.");
    }
}
