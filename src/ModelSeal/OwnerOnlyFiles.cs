using System.Runtime.Versioning;
using System.Security.AccessControl;
using System.Security.Principal;

namespace ModelSeal;

/// <summary>What an access-control entry allows, as far as secret files are concerned.</summary>
[Flags]
internal enum SecretAccess
{
    None = 0,
    Read = 1,
    Write = 2,
}

/// <summary>An allow entry of a file's access-control list: who, and what it grants (deny entries only narrow access).</summary>
/// <param name="Sid">The security identifier, e.g. <c>S-1-1-0</c> (Everyone).</param>
/// <param name="Access">What it allows.</param>
internal readonly record struct AllowEntry(string Sid, SecretAccess Access);

/// <summary>
/// The one owner-only rule for secret files and directories (key files, credentials, device keys, leases, the key
/// server's data directory): on Unix no permission bit for group or others; on Windows no access-control entry that lets
/// anyone but the owner, SYSTEM or the Administrators group read or write. The Windows decision is a pure function of
/// the entries (<see cref="WindowsExposure"/>), tested on every platform; reading and writing the real access-control
/// list is the small Windows-only part, which compiles everywhere but is untested here (docs/threat-model.md).
/// Self-contained (BCL only) so that the client package can compile its own copy.
/// </summary>
internal static class OwnerOnlyFiles
{
    private const UnixFileMode GroupOrOther = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    private const string LocalSystem = "S-1-5-18";
    private const string Administrators = "S-1-5-32-544";

    /// <summary>Null when <paramref name="path"/> (a file or directory) is owner-only; otherwise who else may access it, for a message.</summary>
    public static string? Exposure(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            (string owner, List<AllowEntry> entries) = ReadWindowsAcl(path);
            return WindowsExposure(owner, entries);
        }

        UnixFileMode mode = File.GetUnixFileMode(path);
        return (mode & GroupOrOther) == 0 ? null : $"mode {Convert.ToString((int)mode, 8)}";
    }

    /// <summary>The command that makes <paramref name="path"/> owner-only, for a hint.</summary>
    public static string Fix(string path)
    {
        bool directory = Directory.Exists(path);
        return OperatingSystem.IsWindows()
            ? $"icacls \"{path}\" /inheritance:r /grant:r \"%USERNAME%:{(directory ? "(OI)(CI)F" : "F")}\""
            : $"chmod {(directory ? "700" : "600")} '{path}'";
    }

    /// <summary>
    /// Who besides the owner, SYSTEM and the Administrators may read or write, given the owner's SID and the allow
    /// entries of the access-control list; null when nobody.
    /// </summary>
    public static string? WindowsExposure(string ownerSid, IEnumerable<AllowEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        List<string> others = [.. entries
            .Where(e => e.Access != SecretAccess.None && e.Sid != ownerSid && e.Sid != LocalSystem && e.Sid != Administrators)
            .Select(e => $"{e.Sid} may {Describe(e.Access)}")
            .Distinct(StringComparer.Ordinal)];
        return others.Count == 0 ? null : string.Join(", ", others);
    }

    /// <summary>
    /// Makes a file or directory just created owner-only on Windows (an explicit, protected list: the current user
    /// only); on Unix the caller creates it with the owner-only mode and this does nothing.
    /// </summary>
    public static void RestrictOnWindows(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            WriteOwnerOnlyAcl(path);
        }
    }

    private static string Describe(SecretAccess access) => access switch
    {
        SecretAccess.Read | SecretAccess.Write => "read and write",
        SecretAccess.Read => "read",
        _ => "write",
    };

    [SupportedOSPlatform("windows")]
    private static (string Owner, List<AllowEntry> Entries) ReadWindowsAcl(string path)
    {
        FileSystemSecurity security = Directory.Exists(path)
            ? new DirectoryInfo(path).GetAccessControl()
            : new FileInfo(path).GetAccessControl();
        string owner = security.GetOwner(typeof(SecurityIdentifier))?.Value ?? string.Empty;
        var entries = new List<AllowEntry>();
        foreach (FileSystemAccessRule rule in security.GetAccessRules(includeExplicit: true, includeInherited: true, typeof(SecurityIdentifier)))
        {
            if (rule.AccessControlType != AccessControlType.Allow)
            {
                continue;
            }

            const FileSystemRights WriteRights = FileSystemRights.WriteData | FileSystemRights.AppendData | FileSystemRights.WriteAttributes
                | FileSystemRights.WriteExtendedAttributes | FileSystemRights.Delete | FileSystemRights.ChangePermissions | FileSystemRights.TakeOwnership;
            SecretAccess access = ((rule.FileSystemRights & FileSystemRights.ReadData) != 0 ? SecretAccess.Read : SecretAccess.None)
                | ((rule.FileSystemRights & WriteRights) != 0 ? SecretAccess.Write : SecretAccess.None);
            entries.Add(new AllowEntry(rule.IdentityReference.Value, access));
        }

        return (owner, entries);
    }

    [SupportedOSPlatform("windows")]
    private static void WriteOwnerOnlyAcl(string path)
    {
        SecurityIdentifier user = WindowsIdentity.GetCurrent().User ?? throw new InvalidOperationException("The current Windows user has no security identifier.");
        if (Directory.Exists(path))
        {
            var security = new DirectorySecurity();
            security.SetAccessRuleProtection(isProtected: true, preserveInheritance: false);
            security.AddAccessRule(new FileSystemAccessRule(user, FileSystemRights.FullControl, InheritanceFlags.ContainerInherit | InheritanceFlags.ObjectInherit, PropagationFlags.None, AccessControlType.Allow));
            new DirectoryInfo(path).SetAccessControl(security);
        }
        else
        {
            var security = new FileSecurity();
            security.SetAccessRuleProtection(isProtected: true, preserveInheritance: false);
            security.AddAccessRule(new FileSystemAccessRule(user, FileSystemRights.FullControl, AccessControlType.Allow));
            new FileInfo(path).SetAccessControl(security);
        }
    }
}
