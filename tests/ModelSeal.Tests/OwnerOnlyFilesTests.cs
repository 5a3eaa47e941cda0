namespace ModelSeal.Tests;

/// <summary>
/// The owner-only rule: on Unix through real files; the Windows decision through its pure function (the access-control
/// list itself is read only on Windows, untested here).
/// </summary>
public sealed class OwnerOnlyFilesTests
{
    private const string Owner = "S-1-5-21-1000-2000-3000-1001";
    private const string OtherUser = "S-1-5-21-1000-2000-3000-1002";
    private const string Everyone = "S-1-1-0";
    private const string Users = "S-1-5-32-545";
    private const string System = "S-1-5-18";
    private const string Administrators = "S-1-5-32-544";

    private static readonly (AllowEntry[] Entries, string? Expected)[] WindowsCases =
    [
        ([new(Owner, SecretAccess.Read | SecretAccess.Write)], null),
        ([new(Owner, SecretAccess.Read | SecretAccess.Write), new(System, SecretAccess.Read | SecretAccess.Write), new(Administrators, SecretAccess.Read | SecretAccess.Write)], null),
        ([new(Owner, SecretAccess.Read), new(Everyone, SecretAccess.None)], null),
        ([new(Owner, SecretAccess.Read | SecretAccess.Write), new(Users, SecretAccess.Read)], $"{Users} may read"),
        ([new(Owner, SecretAccess.Read | SecretAccess.Write), new(Everyone, SecretAccess.Write)], $"{Everyone} may write"),
        ([new(OtherUser, SecretAccess.Read | SecretAccess.Write), new(Users, SecretAccess.Read), new(Users, SecretAccess.Read)], $"{OtherUser} may read and write, {Users} may read"),
        ([], null),
    ];

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    public void The_Windows_decision_allows_only_the_owner_system_and_administrators(int index) =>
        Assert.Equal(WindowsCases[index].Expected, OwnerOnlyFiles.WindowsExposure(Owner, WindowsCases[index].Entries));

    [Fact]
    public void On_Unix_any_group_or_other_bit_exposes_a_file_and_the_fix_is_chmod()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("Unix permissions only.");
            return;
        }

        string path = Path.Combine(Path.GetTempPath(), "modelseal-owner-only-" + Guid.NewGuid().ToString("N"));
        try
        {
            File.WriteAllText(path, "secret");
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            Assert.Null(OwnerOnlyFiles.Exposure(path));
            foreach (UnixFileMode bit in new[] { UnixFileMode.GroupRead, UnixFileMode.GroupWrite, UnixFileMode.GroupExecute, UnixFileMode.OtherRead, UnixFileMode.OtherWrite, UnixFileMode.OtherExecute })
            {
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | bit);
                Assert.StartsWith("mode ", OwnerOnlyFiles.Exposure(path), StringComparison.Ordinal);
            }

            Assert.Equal($"chmod 600 '{path}'", OwnerOnlyFiles.Fix(path));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
