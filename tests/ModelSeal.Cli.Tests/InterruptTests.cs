using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace ModelSeal.Cli.Tests;

/// <summary>A 256 MiB model sealed once for all the tests of a class, in a temporary directory.</summary>
public sealed class LargeSealedModel : IAsyncLifetime
{
    public const long Length = 256L * 1024 * 1024;

    private readonly TempDirectory _directory = new("modelseal-interrupt-");

    public string Directory => _directory.Path;

    public string Key => Path.Combine(Directory, "dev.key");

    public string SealedModel => Path.Combine(Directory, "large.mseal");

    /// <summary>SHA-256 of the plaintext (which is not kept).</summary>
    public byte[] PlaintextHash { get; private set; } = [];

    public async ValueTask InitializeAsync()
    {
        using ModelKey key = ModelKey.Generate("interrupt-tests");
        KeyFile.Write(Key, key);
        string plaintext = Path.Combine(Directory, "large.bin");
        using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        await using (var file = new FileStream(plaintext, FileMode.CreateNew, FileAccess.Write))
        {
            byte[] block = new byte[4 * 1024 * 1024];
            for (long written = 0; written < Length; written += block.Length)
            {
                RandomNumberGenerator.Fill(block);
                hash.AppendData(block);
                await file.WriteAsync(block);
            }

            PlaintextHash = hash.GetHashAndReset();
        }

        await using (FileStream source = File.OpenRead(plaintext))
        await using (var destination = new FileStream(SealedModel, FileMode.CreateNew, FileAccess.Write))
        {
            await ModelSeal.SealedModel.SealAsync(source, destination, key, new SealOptions { ModelId = "large", ModelVersion = "1" });
        }

        File.Delete(plaintext);
    }

    public ValueTask DisposeAsync()
    {
        _directory.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>
/// The real CLI, decrypting or sealing a 256 MiB model, interrupted mid-way by signals (SIGINT twice, SIGTERM,
/// SIGHUP, SIGKILL): afterwards the output directory holds nothing but, at most, a complete and correct output. The
/// moment is chosen by watching the child: its open output file (/proc/PID/fd) and the bytes it has written
/// (/proc/PID/io); it is then stopped (SIGSTOP) so that the signals reach it while the output is still being written.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class InterruptTests(LargeSealedModel model) : IClassFixture<LargeSealedModel>
{
    private static readonly Dictionary<string, string> NamedTemporary = new() { ["MODELSEAL_TEST_NAMED_TEMPORARY"] = "1" };

    [Theory]
    [InlineData("INT,INT", 0.0, false)]
    [InlineData("INT,INT", 0.5, false)]
    [InlineData("INT", 0.3, false)]
    [InlineData("TERM", 0.6, false)]
    [InlineData("HUP", 0.2, false)]
    [InlineData("INT,INT", 0.4, true)]
    [InlineData("INT", 0.1, true)]
    [InlineData("TERM", 0.7, true)]
    [InlineData("HUP", 0.5, true)]
    public async Task An_interrupted_decrypt_leaves_no_file_and_says_so(string signals, double moment, bool namedTemporary)
    {
        SkipUnlessLinux();
        using var ws = new Workspace();
        string output = ws["model.bin"];
        using var child = CliProcess.Start(["decrypt", model.SealedModel, "--key", model.Key, "--out", output], namedTemporary ? NamedTemporary : null);

        string open = await StopMidWayAsync(child, ws.Directory, moment);
        Assert.Equal(namedTemporary, Path.GetFileName(open).EndsWith(".modelseal-tmp", StringComparison.Ordinal));
        await SendAsync(child, signals);
        CliResult result = await child.WaitAsync();

        AssertInterrupted(result, signals);
        Assert.Empty(ws.FileNames());
    }

    [Fact]
    public async Task A_decrypt_killed_mid_way_leaves_nothing()
    {
        SkipUnlessLinux();
        using var ws = new Workspace();
        using var child = CliProcess.Start(["decrypt", model.SealedModel, "--key", model.Key, "--out", ws["model.bin"]]);

        string open = await StopMidWayAsync(child, ws.Directory, 0.5);
        await child.KillAsync();

        Assert.EndsWith("(deleted)", open, StringComparison.Ordinal); // the unnamed O_TMPFILE file
        Assert.Empty(ws.FileNames());
    }

    [Fact]
    public async Task A_named_temporary_file_left_by_a_killed_decrypt_is_removed_by_the_next_run()
    {
        SkipUnlessLinux();
        using var ws = new Workspace();
        string[] args = ["decrypt", model.SealedModel, "--key", model.Key, "--out", ws["model.bin"]];
        using var killed = CliProcess.Start(args, NamedTemporary);
        string open = await StopMidWayAsync(killed, ws.Directory, 0.5);
        await killed.KillAsync();
        string leftover = Assert.Single(ws.FileNames());
        Assert.Equal(Path.GetFileName(open), leftover);
        Assert.StartsWith($".model.bin.{killed.Id}.", leftover, StringComparison.Ordinal);

        using var next = CliProcess.Start(args, NamedTemporary);
        CliResult result = await next.WaitAsync();

        Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());
        Assert.Equal(["model.bin"], ws.FileNames());
        AssertComplete(ws["model.bin"]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Force_replaces_the_output_only_when_complete(bool namedTemporary)
    {
        SkipUnlessLinux();
        using var ws = new Workspace();
        string output = ws["model.bin"];
        File.WriteAllText(output, "the previous model");
        string[] args = ["decrypt", model.SealedModel, "--key", model.Key, "--out", output, "--force"];
        Dictionary<string, string>? environment = namedTemporary ? NamedTemporary : null;

        using (var interrupted = CliProcess.Start(args, environment))
        {
            await StopMidWayAsync(interrupted, ws.Directory, 0.5);
            await SendAsync(interrupted, "INT,INT");
            AssertInterrupted(await interrupted.WaitAsync(), "INT,INT");
            Assert.Equal(["model.bin"], ws.FileNames());
            Assert.Equal("the previous model", File.ReadAllText(output));
        }

        using var completed = CliProcess.Start(args, environment);
        CliResult result = await completed.WaitAsync();

        Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());
        Assert.Equal(["model.bin"], ws.FileNames());
        AssertComplete(output);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(output));
    }

    [Theory]
    [InlineData("INT,INT", 0.3)]
    [InlineData("TERM", 0.6)]
    [InlineData("KILL", 0.5)]
    public async Task An_interrupted_encrypt_leaves_no_file(string signals, double moment)
    {
        SkipUnlessLinux();
        using var ws = new Workspace();
        using var child = CliProcess.Start(["encrypt", model.SealedModel, "--key", model.Key, "--model-id", "m", "--model-version", "1", "--out", ws["again.mseal"]]);

        await StopMidWayAsync(child, ws.Directory, moment);
        if (signals == "KILL")
        {
            await child.KillAsync();
        }
        else
        {
            await SendAsync(child, signals);
            AssertInterrupted(await child.WaitAsync(), signals);
        }

        Assert.Empty(ws.FileNames());
    }

    private static void SkipUnlessLinux()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Skip("watches the child through /proc and signals it with kill(2): Linux only");
        }
    }

    private void AssertComplete(string path)
    {
        using FileStream file = File.OpenRead(path);
        Assert.Equal(model.PlaintextHash, SHA256.HashData(file));
    }

    private static void AssertInterrupted(CliResult result, string signals)
    {
        string first = "SIG" + signals.Split(',')[0];
        Assert.True(result.ExitCode == ExitCodes.Cancelled, result.ToString());
        Assert.Contains($"error: interrupted by {first}", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(string.Empty, result.Stdout);
    }

    /// <summary>
    /// Waits until the child has its output open in <paramref name="directory"/> and has written
    /// <paramref name="moment"/> of the model, stops it (SIGSTOP) and checks it is still writing; returns what the
    /// output descriptor names (<c>DIR/#INODE (deleted)</c> for an unnamed file).
    /// </summary>
    private static async Task<string> StopMidWayAsync(CliProcess child, string directory, double moment)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        while (Proc.OpenFileIn(child.Id, directory) is null || Proc.WrittenBytes(child.Id) < moment * LargeSealedModel.Length)
        {
            if (child.Stderr.IsCompleted)
            {
                Assert.Fail("the child exited before being interrupted: " + await child.Stderr);
            }

            await Task.Delay(1, timeout.Token);
        }

        Proc.Kill(child.Id, Proc.SIGSTOP);
        while (Proc.State(child.Id) != 'T')
        {
            await Task.Delay(1, timeout.Token);
        }

        string? open = Proc.OpenFileIn(child.Id, directory);
        Assert.True(open is not null && Proc.WrittenBytes(child.Id) < LargeSealedModel.Length, "the child should be stopped while writing its output");
        return open;
    }

    /// <summary>Sends the signals one after the other, each once the previous one was taken (no longer pending), and lets the child run on.</summary>
    private static async Task SendAsync(CliProcess child, string signals)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        bool first = true;
        foreach (string name in signals.Split(','))
        {
            int signal = name switch { "INT" => Proc.SIGINT, "TERM" => Proc.SIGTERM, "HUP" => Proc.SIGHUP, _ => throw new ArgumentException(name) };
            Proc.Kill(child.Id, signal);
            if (first)
            {
                Proc.Kill(child.Id, Proc.SIGCONT);
                first = false;
            }

            while (Proc.IsPending(child.Id, signal))
            {
                await Task.Delay(1, timeout.Token);
            }
        }
    }
}

/// <summary>What Linux shows of a process under /proc, and kill(2).</summary>
internal static class Proc
{
    public const int SIGHUP = 1, SIGINT = 2, SIGTERM = 15, SIGCONT = 18, SIGSTOP = 19;

    /// <summary>Sends a signal; a process that has already exited is not an error.</summary>
    public static void Kill(int pid, int signal)
    {
        const int ESRCH = 3;
        if (kill(pid, signal) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            Assert.True(errno == ESRCH, $"kill({pid}, {signal}) failed: {Marshal.GetPInvokeErrorMessage(errno)}");
        }
    }

    /// <summary>The first open file of the process in <paramref name="directory"/>, as /proc/PID/fd names it, or null.</summary>
    public static string? OpenFileIn(int pid, string directory)
    {
        try
        {
            return System.IO.Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd")
                .Select(fd => Try(() => new FileInfo(fd).LinkTarget))
                .FirstOrDefault(target => target is not null && target.StartsWith(directory + "/", StringComparison.Ordinal));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // exited
        }
    }

    /// <summary>Bytes the process has written with write(2) and its kind (wchar in /proc/PID/io); 0 once it has exited.</summary>
    public static long WrittenBytes(int pid) =>
        Field(pid, "io", "wchar:") is { } value ? long.Parse(value, CultureInfo.InvariantCulture) : 0;

    /// <summary>The state letter of /proc/PID/status (R, S, D, T, Z…); 'X' once it is gone.</summary>
    public static char State(int pid) => Field(pid, "status", "State:") is { Length: > 0 } value ? value[0] : 'X';

    /// <summary>True while <paramref name="signal"/> is pending for the process as a whole (ShdPnd in /proc/PID/status).</summary>
    public static bool IsPending(int pid, int signal) =>
        Field(pid, "status", "ShdPnd:") is { } mask && (ulong.Parse(mask, NumberStyles.HexNumber, CultureInfo.InvariantCulture) & (1UL << (signal - 1))) != 0;

    private static string? Field(int pid, string file, string name)
    {
        try
        {
            string? line = File.ReadLines($"/proc/{pid}/{file}").FirstOrDefault(l => l.StartsWith(name, StringComparison.Ordinal));
            return line?[name.Length..].Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string? Try(Func<string?> read)
    {
        try
        {
            return read();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

#pragma warning disable SYSLIB1054 // LibraryImport would need unsafe code; kill's signature is blittable.
    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);
#pragma warning restore SYSLIB1054
}
