using System.Buffers.Binary;

namespace ModelSeal.Tests;

/// <summary>
/// File identity, by which the CLI refuses an output that is one of its inputs: the Linux call through real files and
/// links; the macOS and Windows answers through their decoders (synthetic buffers, the calls themselves untested here);
/// the decision through its seam.
/// </summary>
public sealed class FileIdentityTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("modelseal-identity-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void The_macOS_stat_answer_gives_device_and_inode()
    {
        byte[] stat = new byte[144];
        BinaryPrimitives.WriteInt32LittleEndian(stat, 16777232);          // st_dev
        BinaryPrimitives.WriteUInt16LittleEndian(stat.AsSpan(4), 0x81a4);  // st_mode: a regular file, 0644
        BinaryPrimitives.WriteUInt16LittleEndian(stat.AsSpan(6), 2);       // st_nlink
        BinaryPrimitives.WriteUInt64LittleEndian(stat.AsSpan(8), 0x0000_0001_2345_6789); // st_ino
        BinaryPrimitives.WriteUInt32LittleEndian(stat.AsSpan(16), 501);    // st_uid

        Assert.Equal(new FileIdentity(16777232, 0x0000_0001_2345_6789), FileIdentity.FromMacStat(stat));
    }

    [Fact]
    public void The_Windows_file_information_gives_volume_serial_and_file_index()
    {
        byte[] information = new byte[52];
        BinaryPrimitives.WriteUInt32LittleEndian(information, 0x20);                 // dwFileAttributes: archive
        BinaryPrimitives.WriteInt64LittleEndian(information.AsSpan(4), 133_000_000_000_000_000); // creation time
        BinaryPrimitives.WriteUInt32LittleEndian(information.AsSpan(28), 0xC0FFEE42); // dwVolumeSerialNumber
        BinaryPrimitives.WriteUInt32LittleEndian(information.AsSpan(36), 4096);       // nFileSizeLow
        BinaryPrimitives.WriteUInt32LittleEndian(information.AsSpan(40), 2);          // nNumberOfLinks
        BinaryPrimitives.WriteUInt32LittleEndian(information.AsSpan(44), 0x0003_0000); // nFileIndexHigh
        BinaryPrimitives.WriteUInt32LittleEndian(information.AsSpan(48), 0x0000_1234); // nFileIndexLow

        Assert.Equal(new FileIdentity(0xC0FFEE42, 0x0003_0000_0000_1234), FileIdentity.FromWindowsInformation(information));
    }

    [Fact]
    public void Every_name_of_one_file_has_its_identity_and_another_file_does_not()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "The identity call runs in CI on Linux only.");
        string file = Write("model.key");
        string other = Write("other.key");
        string hardLink = Path.Combine(_directory, "hard.key");
        Assert.Equal(0, Link(file, hardLink));
        string symbolicLink = Path.Combine(_directory, "symbolic.key");
        File.CreateSymbolicLink(symbolicLink, file);

        FileIdentity identity = Assert.NotNull(FileIdentity.Of(file));
        Assert.Equal(identity, FileIdentity.Of(Path.Combine(_directory, ".", "model.key")));
        Assert.Equal(identity, FileIdentity.Of(hardLink));
        Assert.Equal(identity, FileIdentity.Of(symbolicLink));
        Assert.NotEqual(identity, FileIdentity.Of(other));
        Assert.Null(FileIdentity.Of(Path.Combine(_directory, "missing.key")));

        Assert.True(FileIdentity.SameFile(file, hardLink));
        Assert.True(FileIdentity.SameFile(symbolicLink, file));
        Assert.False(FileIdentity.SameFile(file, other));
    }

    [Fact]
    public void The_decision_trusts_identity_where_both_files_have_one()
    {
        string a = Write("a.key");
        string b = Write("b.key");

        Assert.True(FileIdentity.SameFile(a, b, _ => new FileIdentity(1, 7), ignoreCase: false));
        Assert.False(FileIdentity.SameFile(a, b, path => new FileIdentity(1, path == a ? 7UL : 8UL), ignoreCase: false));
    }

    [Fact]
    public void A_missing_file_is_never_the_same_file()
    {
        string a = Write("a.key");
        string missing = Path.Combine(_directory, "missing.key");

        Assert.False(FileIdentity.SameFile(a, missing, _ => new FileIdentity(1, 7), ignoreCase: true));
        Assert.False(FileIdentity.SameFile(missing, missing, _ => null, ignoreCase: true));
    }

    [Fact]
    public void Without_identity_the_paths_decide_with_the_platform_case_rule()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "Two names differing only in case are two files only on a case-sensitive file system.");
        string lower = Write("key.bin");
        string upper = Write("KEY.BIN");

        Assert.True(FileIdentity.SameFile(lower, Path.Combine(_directory, ".", "key.bin"), _ => null, ignoreCase: false));
        Assert.False(FileIdentity.SameFile(lower, upper, _ => null, ignoreCase: false));
        Assert.True(FileIdentity.SameFile(lower, upper, _ => null, ignoreCase: true));
    }

    private string Write(string name)
    {
        string path = Path.Combine(_directory, name);
        File.WriteAllText(path, name);
        return path;
    }

    private static int Link(string target, string link)
    {
        using var ln = System.Diagnostics.Process.Start("ln", [target, link]);
        ln.WaitForExit();
        return ln.ExitCode;
    }
}
