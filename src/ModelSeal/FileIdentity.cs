using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using Microsoft.Win32.SafeHandles;

namespace ModelSeal;

/// <summary>
/// The identity of a file, equal for every name it goes by (hard links, symbolic links, <c>.</c> and case variants):
/// <list type="bullet">
/// <item>Linux: the device and inode (<c>statx</c>);</item>
/// <item>macOS: the device and inode (<c>stat</c>, the 64-bit-inode form);</item>
/// <item>Windows: the volume serial number and the 64-bit file index (<c>GetFileInformationByHandle</c>; on ReFS the
/// index is documented as possibly not unique).</item>
/// </list>
/// Only the Linux call runs in this project's CI. The macOS and Windows calls compile everywhere; the decoding of their
/// answers is a pure function tested on every platform with synthetic buffers.
/// </summary>
internal readonly record struct FileIdentity(ulong Volume, ulong File)
{
    /// <summary>The identity of the file at <paramref name="path"/> (symbolic links followed); null when it does not
    /// exist, cannot be opened, or the platform has no call for it.</summary>
    public static FileIdentity? Of(string path)
    {
        try
        {
            if (OperatingSystem.IsLinux())
            {
                return LinuxFileCalls.FileIdentity(path) is { } id ? new(((ulong)id.DeviceMajor << 32) | id.DeviceMinor, id.Inode) : null;
            }

            if (OperatingSystem.IsMacOS())
            {
                byte[] buffer = new byte[MacStatSize];
                byte[] bytes = LinuxFileCalls.PathBytes(path);
                int result = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? MacStatInode64(bytes, buffer) : MacStat(bytes, buffer);
                return result == 0 ? FromMacStat(buffer) : null;
            }

            if (OperatingSystem.IsWindows())
            {
                return OfWindows(path);
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or IOException or UnauthorizedAccessException)
        {
            return null;
        }

        return null;
    }

    /// <summary>
    /// True when both paths name the same existing file: by identity; where the platform cannot tell, by absolute path
    /// with symbolic links followed, ignoring case except on Linux.
    /// </summary>
    public static bool SameFile(string a, string b) => SameFile(a, b, Of, ignoreCase: !OperatingSystem.IsLinux());

    /// <summary><see cref="SameFile(string, string)"/> with the identity call and the path rule given: the decision,
    /// testable on every platform.</summary>
    public static bool SameFile(string a, string b, Func<string, FileIdentity?> identityOf, bool ignoreCase)
    {
        ArgumentNullException.ThrowIfNull(identityOf);
        if (!System.IO.File.Exists(a) || !System.IO.File.Exists(b))
        {
            return false; // a name with no file behind it is not the other file
        }

        return identityOf(a) is { } first && identityOf(b) is { } second
            ? first == second
            : string.Equals(Resolve(a), Resolve(b), ignoreCase ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);
    }

    /// <summary>
    /// Decodes macOS's <c>struct stat</c> (64-bit inodes, the only form on arm64 and <c>stat$INODE64</c> on x64):
    /// <c>st_dev</c> (int32) at offset 0, <c>st_ino</c> (uint64) at offset 8.
    /// </summary>
    public static FileIdentity FromMacStat(ReadOnlySpan<byte> stat) =>
        new((uint)BinaryPrimitives.ReadInt32LittleEndian(stat), BinaryPrimitives.ReadUInt64LittleEndian(stat[8..]));

    /// <summary>
    /// Decodes Windows's <c>BY_HANDLE_FILE_INFORMATION</c>: <c>dwVolumeSerialNumber</c> at offset 28,
    /// <c>nFileIndexHigh</c> at 44 and <c>nFileIndexLow</c> at 48 (all DWORD).
    /// </summary>
    public static FileIdentity FromWindowsInformation(ReadOnlySpan<byte> information) =>
        new(
            BinaryPrimitives.ReadUInt32LittleEndian(information[28..]),
            ((ulong)BinaryPrimitives.ReadUInt32LittleEndian(information[44..]) << 32) | BinaryPrimitives.ReadUInt32LittleEndian(information[48..]));

    /// <summary>The size of <c>struct stat</c> on macOS (144 bytes), rounded up.</summary>
    private const int MacStatSize = 160;

    /// <summary>The size of <c>BY_HANDLE_FILE_INFORMATION</c>.</summary>
    private const int WindowsInformationSize = 52;

    private static string Resolve(string path)
    {
        string full = Path.GetFullPath(path);
        try
        {
            return new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full;
        }
        catch (IOException)
        {
            return full;
        }
    }

    [SupportedOSPlatform("windows")]
    private static FileIdentity? OfWindows(string path)
    {
        // Opening for reading follows symbolic links; sharing everything keeps this from disturbing other users.
        using SafeFileHandle handle = System.IO.File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        byte[] information = new byte[WindowsInformationSize];
        return GetFileInformationByHandle(handle, information) ? FromWindowsInformation(information) : null;
    }

#pragma warning disable SYSLIB1054 // LibraryImport needs unsafe code, which this assembly does not allow; these signatures are blittable.
    [DllImport("libc", EntryPoint = "stat")]
    private static extern int MacStat(byte[] path, byte[] buffer);

    [DllImport("libc", EntryPoint = "stat$INODE64")]
    private static extern int MacStatInode64(byte[] path, byte[] buffer);

    [DllImport("kernel32", SetLastError = true)]
    [return: MarshalAs(UnmanagedType.Bool)]
    private static extern bool GetFileInformationByHandle(SafeFileHandle file, byte[] information);
#pragma warning restore SYSLIB1054
}
