using System.Diagnostics;
using System.Text.Json;

namespace ModelSeal.Cli.Tests;

/// <summary>What one in-process run of the CLI printed and returned.</summary>
internal sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    public JsonElement Json()
    {
        using var document = JsonDocument.Parse(Stdout);
        return document.RootElement.Clone();
    }

    public override string ToString() => $"exit {ExitCode}\n--- stdout ---\n{Stdout}\n--- stderr ---\n{Stderr}";
}

/// <summary>A fresh temporary directory, deleted on dispose, with helpers to run the CLI in it.</summary>
internal sealed class Workspace : IDisposable
{
    private readonly TempDirectory _directory = new("modelseal-cli-tests-");

    public string Directory => _directory.Path;

    public string this[string name] => _directory.Sub(name);

    public static async Task<CliResult> RunAsync(params string[] args) => await RunAsync(args, interactive: false);

    public static async Task<CliResult> RunAsync(string[] args, bool interactive, Func<CliContext, CliContext>? configure = null, CancellationToken cancellationToken = default)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int exitCode = configure is null
            ? await Host.Cli.RunAsync(args, stdout, stderr, interactive, cancellationToken)
            : await Host.Cli.RunAsync(args, configure(new CliContext(stdout, stderr, interactive)), cancellationToken);
        return new CliResult(exitCode, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Creates a key file with keygen and returns its path.</summary>
    public async Task<string> KeygenAsync(string name = "dev.key", string? keyId = null)
    {
        string path = this[name];
        string[] args = keyId is null ? ["keygen", "--out", path] : ["keygen", "--out", path, "--key-id", keyId];
        CliResult result = await RunAsync(args);
        Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());
        return path;
    }

    /// <summary>Seals the sample model with the given key and returns the sealed file's path.</summary>
    public async Task<string> SealSampleAsync(string keyPath, string name = "model.mseal")
    {
        string path = this[name];
        CliResult result = await RunAsync("encrypt", RepoPaths.SampleModel, "--key", keyPath, "--model-id", "classifier", "--model-version", "1", "--out", path);
        Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());
        return path;
    }

    /// <summary>Names of the files in the directory (temporary files included).</summary>
    public string[] FileNames() =>
        [.. System.IO.Directory.EnumerateFileSystemEntries(Directory).Select(Path.GetFileName).Order(StringComparer.Ordinal)!];

    public void Dispose() => _directory.Dispose();
}

internal static class Asserts
{
    /// <summary>Standard error has an "error: " line containing <paramref name="text"/> and a "hint: " line, and no stack trace.</summary>
    public static void ErrorWithHint(CliResult result, string text)
    {
        string[] lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.True(lines.Any(l => l.StartsWith("error: ", StringComparison.Ordinal) && l.Contains(text, StringComparison.Ordinal)), result.ToString());
        Assert.True(lines.Any(l => l.StartsWith("hint: ", StringComparison.Ordinal)), result.ToString());
        Assert.DoesNotContain("   at ", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("unexpected", result.Stderr, StringComparison.Ordinal);
    }
}

/// <summary>The real built CLI (ModelSeal.Cli.dll, the `modelseal` command) running as a child process, its output read as it comes.</summary>
internal sealed class CliProcess : IDisposable
{
    private readonly Process _process;

    private CliProcess(Process process)
    {
        _process = process;
        Stdout = process.StandardOutput.ReadToEndAsync();
        Stderr = process.StandardError.ReadToEndAsync();
    }

    public int Id => _process.Id;

    public Task<string> Stdout { get; }

    public Task<string> Stderr { get; }

    /// <param name="args">The arguments.</param>
    /// <param name="environment">Variables to set.</param>
    /// <param name="standardInput">A file whose bytes go to the child's standard input, a pipe (otherwise it inherits none).</param>
    /// <param name="filePermissionsApply">
    /// Run as root (Linux) without the capabilities that let root ignore file permissions (CAP_DAC_OVERRIDE,
    /// CAP_DAC_READ_SEARCH), so that a directory without write permission refuses it as it refuses anyone.
    /// </param>
    public static CliProcess Start(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null, string? standardInput = null, bool filePermissionsApply = false)
    {
        // The CLI referenced by the tests, started the way `modelseal bench` starts itself: dotnet ModelSeal.Cli.dll.
        IReadOnlyList<string> self = new CliContext(TextWriter.Null, TextWriter.Null, Interactive: false).SelfCommand;
        Assert.True(self.Count == 2 && File.Exists(self[1]), "ModelSeal.Cli.dll should be copied next to the tests by the project reference: " + string.Join(' ', self));
        // A background job of a non-interactive shell (as `.ci/run` starts `dotnet test`) inherits SIGINT ignored, and
        // so would the CLI: GNU env's --default-signal gives the child the default disposition, as from a terminal.
        var start = new ProcessStartInfo(OperatingSystem.IsLinux() ? "env" : self[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (OperatingSystem.IsLinux())
        {
            if (filePermissionsApply && Environment.UserName == "root")
            {
                start.FileName = "setpriv";
                start.ArgumentList.Add("--bounding-set=-dac_override,-dac_read_search");
                start.ArgumentList.Add("env");
            }

            start.ArgumentList.Add("--default-signal=INT");
            start.ArgumentList.Add(self[0]);
        }

        start.ArgumentList.Add(self[1]);
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach ((string name, string value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        start.RedirectStandardInput = standardInput is not null;
        var process = new CliProcess(Process.Start(start)!);
        if (standardInput is not null)
        {
            process.FeedStandardInput(standardInput);
        }

        return process;
    }

    /// <summary>The child's standard input, fed in the background and closed at the end.</summary>
    public Task? StandardInputFed { get; private set; }

    private void FeedStandardInput(string path) => StandardInputFed = Task.Run(async () =>
    {
        try
        {
            await using (FileStream file = File.OpenRead(path))
            {
                await file.CopyToAsync(_process.StandardInput.BaseStream);
            }

            _process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The child stopped reading (it refused the input early): what matters is its answer.
        }
    });

    /// <summary>Waits (at most two minutes) for the process to exit; returns its exit code and output.</summary>
    public async Task<CliResult> WaitAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await _process.WaitForExitAsync(timeout.Token);
        return new CliResult(_process.ExitCode, await Stdout, await Stderr);
    }

    /// <summary>Kills the process (SIGKILL) and waits for it to be gone.</summary>
    public async Task KillAsync()
    {
        _process.Kill();
        await WaitAsync();
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit();
        }

        _process.Dispose();
    }
}

/// <summary>The verbs of the command tree: every command that runs something (not the groups, not hidden ones).</summary>
internal static class CommandTree
{
    /// <summary>Each verb as its path of names ("licence", "add").</summary>
    public static IReadOnlyList<string[]> Verbs()
    {
        var verbs = new List<string[]>();
        void Walk(System.CommandLine.Command command, string[] path)
        {
            foreach (System.CommandLine.Command sub in command.Subcommands.Where(c => !c.Hidden))
            {
                string[] subPath = [.. path, sub.Name];
                if (sub.Action is not null)
                {
                    verbs.Add(subPath);
                }

                Walk(sub, subPath);
            }
        }

        Walk(Host.Program.CreateRootCommand(new CliContext(TextWriter.Null, TextWriter.Null, Interactive: false)), []);
        return verbs;
    }

    public static TheoryData<string> VerbNames() => [.. Verbs().Select(v => string.Join(' ', v))];
}

/// <summary>Standard output that completes <see cref="Seen"/> when a line starting with a prefix is written.</summary>
internal sealed class LineSignal(string prefix) : StringWriter
{
    private readonly TaskCompletionSource _seen = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Seen => _seen.Task;

    public override void WriteLine(string? value)
    {
        base.WriteLine(value);
        if (value?.StartsWith(prefix, StringComparison.Ordinal) == true)
        {
            _seen.TrySetResult();
        }
    }
}
