using System.Diagnostics;

namespace ModelSeal.Tests;

/// <summary>AtomicFile in both modes: the unnamed O_TMPFILE file (Linux) and the named temporary file (elsewhere, and the fallback).</summary>
public sealed class AtomicFileTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("modelseal-atomic-").FullName;

    public static TheoryData<bool> Modes => new(true, false);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void On_linux_the_content_has_no_name_until_committed()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Skip("O_TMPFILE is Linux only");
            return;
        }

        string target = Path.Combine(_directory, "model.onnx");

        using (var file = AtomicFile.Create(target, overwrite: false, ownerOnly: true))
        {
            file.Stream.Write(new byte[100_000]);
            file.Stream.Flush();

            Assert.True(file.IsUnnamed, "ext4/tmpfs/xfs/btrfs support O_TMPFILE; the temporary directory should");
            Assert.Empty(Names());
            file.Commit();
        }

        Assert.Equal(["model.onnx"], Names());
        Assert.Equal(100_000, new FileInfo(target).Length);
        AssertOwnerOnly(target);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void A_write_that_is_not_committed_leaves_nothing(bool unnamed)
    {
        string target = Path.Combine(_directory, "out.bin");

        using (var file = AtomicFile.Create(target, overwrite: false, ownerOnly: true, allowUnnamed: unnamed))
        {
            file.Stream.Write(new byte[4096]);
            Assert.Equal(unnamed && OperatingSystem.IsLinux(), file.IsUnnamed);
        }

        Assert.Empty(Names());
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void Overwrite_replaces_the_target_and_leaves_no_other_file(bool unnamed)
    {
        string target = Path.Combine(_directory, "out.bin");
        File.WriteAllText(target, "old");

        using (var file = AtomicFile.Create(target, overwrite: true, ownerOnly: true, allowUnnamed: unnamed))
        {
            file.Stream.Write("new"u8);
            Assert.Equal("old", File.ReadAllText(target));
            file.Commit();
        }

        Assert.Equal("new", File.ReadAllText(target));
        Assert.Equal(["out.bin"], Names());
        AssertOwnerOnly(target);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void Without_overwrite_a_target_created_meanwhile_is_kept_and_the_commit_fails(bool unnamed)
    {
        string target = Path.Combine(_directory, "out.bin");

        using (var file = AtomicFile.Create(target, overwrite: false, ownerOnly: false, allowUnnamed: unnamed))
        {
            file.Stream.Write("mine"u8);
            File.WriteAllText(target, "theirs");
            IOException error = Assert.ThrowsAny<IOException>(file.Commit);
            Assert.Contains("out.bin", error.Message, StringComparison.Ordinal);
        }

        Assert.Equal("theirs", File.ReadAllText(target));
        Assert.Equal(["out.bin"], Names());
    }

    [Fact]
    public void The_named_temporary_file_is_hidden_beside_the_target_with_its_process_id()
    {
        string target = Path.Combine(_directory, "out.bin");

        using var file = AtomicFile.Create(target, overwrite: false, ownerOnly: false, allowUnnamed: false);

        string name = Assert.Single(Names());
        Assert.Matches(@"^\.out\.bin\.[0-9]+\.[0-9a-f]{8}\.[0-9a-f]{16}\.modelseal-tmp$", name);
        Assert.StartsWith($".out.bin.{Environment.ProcessId}.{TemporaryNames.Host}.", name, StringComparison.Ordinal);
    }

    [Fact]
    public void Creating_removes_the_stale_temporary_files_of_the_same_target_and_nothing_else()
    {
        int dead = DeadProcessId();
        string host = TemporaryNames.Host;
        string otherHost = host == "00000000" ? "11111111" : "00000000";
        string[] stale =
        [
            $".out.bin.{dead}.{host}.0123456789abcdef.modelseal-tmp",
            $".out.bin.{dead}.{host}.fedcba9876543210.modelseal-tmp", // e.g. a complete output left between linkat and rename
        ];
        string[] kept =
        [
            $".out.bin.{Environment.ProcessId}.{host}.0123456789abcdef.modelseal-tmp", // a live process (this one)
            $".out.bin.{dead}.{otherHost}.0123456789abcdef.modelseal-tmp", // another host or PID namespace
            $".other.bin.{dead}.{host}.0123456789abcdef.modelseal-tmp", // another target
            $".out.bin.{dead}.{host}.0123456789abcdef.tmp", // not ours
            $".out.bin.{dead}.{host}.0123456789ABCDEF.modelseal-tmp", // not our spelling
            $"out.bin.{dead}.{host}.0123456789abcdef.modelseal-tmp",
            "out.bin.modelseal-tmp",
        ];
        foreach (string name in stale.Concat(kept))
        {
            File.WriteAllText(Path.Combine(_directory, name), "x");
        }

        string directoryLike = $".out.bin.{dead}.{host}.aaaaaaaaaaaaaaaa.modelseal-tmp";
        Directory.CreateDirectory(Path.Combine(_directory, directoryLike));

        using (var file = AtomicFile.Create(Path.Combine(_directory, "out.bin"), overwrite: false))
        {
            file.Stream.Write("new"u8);
            file.Commit();
        }

        Assert.Equal([.. kept.Append(directoryLike).Append("out.bin").Order(StringComparer.Ordinal)], Names());
    }

    [Fact]
    public void A_stale_temporary_file_of_another_user_is_left_alone()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux() && Environment.UserName == "root", "needs root to create a file owned by another user");
        string stale = Path.Combine(_directory, $".out.bin.{DeadProcessId()}.{TemporaryNames.Host}.0123456789abcdef.modelseal-tmp");
        File.WriteAllText(stale, "x");
        Assert.Equal(0, Run("chown", "65534", stale));

        using (AtomicFile.Create(Path.Combine(_directory, "out.bin"), overwrite: false))
        {
        }

        Assert.True(File.Exists(stale));
    }

    private static void AssertOwnerOnly(string path)
    {
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }
    }

    private string[] Names() =>
        [.. Directory.EnumerateFileSystemEntries(_directory).Select(p => Path.GetFileName(p)!).Order(StringComparer.Ordinal)];

    // The id of a process that has just exited (and was reaped): not running, and not reused within the test.
    private static int DeadProcessId()
    {
        using Process process = Process.Start(new ProcessStartInfo(OperatingSystem.IsWindows() ? "cmd" : "true", OperatingSystem.IsWindows() ? "/c exit" : string.Empty) { UseShellExecute = false })!;
        process.WaitForExit();
        int pid = process.Id;
        Assert.Throws<ArgumentException>(() => Process.GetProcessById(pid));
        return pid;
    }

    private static int Run(string command, params string[] args)
    {
        var start = new ProcessStartInfo(command) { UseShellExecute = false };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using Process process = Process.Start(start)!;
        process.WaitForExit();
        return process.ExitCode;
    }
}
