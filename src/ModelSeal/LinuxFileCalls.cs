using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace ModelSeal;

/// <summary>
/// The Linux system calls behind <see cref="AtomicFile"/> (libc, P/Invoke): an unnamed file opened with
/// <c>O_TMPFILE</c>, given a name with <c>linkat</c> only once complete, and the owner and identity of a file (<c>statx</c>).
/// Paths go to libc as NUL-terminated UTF-8 byte arrays.
/// </summary>
internal static class LinuxFileCalls
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const int AtSymlinkFollow = 0x400;
    private const int AtEmptyPath = 0x1000;
    private const int OWriteOnly = 0x1;
    private const int OCloseOnExec = 0x80000;
    private const uint StatxType = 0x1;
    private const uint StatxUid = 0x8;
    private const uint StatxIno = 0x100;
    private const int ENOENT = 2;
    private const int EACCES = 13;
    private const int EEXIST = 17;
    private const int EISDIR = 21;
    private const int EINVAL = 22;
    private const int EOPNOTSUPP = 95;

    /// <summary>
    /// <c>O_TMPFILE</c> (<c>__O_TMPFILE | O_DIRECTORY</c>), whose value depends on the architecture; 0 where this code
    /// does not know it (the caller then uses a named temporary file).
    /// </summary>
    private static readonly int OTmpFile = RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 or Architecture.X86 => 0x400000 | 0x10000,
        Architecture.Arm64 or Architecture.Arm => 0x400000 | 0x4000,
        _ => 0,
    };

    /// <summary>
    /// Opens a new, unnamed, write-only regular file in <paramref name="directory"/> with permissions
    /// <paramref name="mode"/> (less the umask). Returns null when the platform or the file system cannot
    /// (<c>EOPNOTSUPP</c>, <c>EISDIR</c> from kernels before 3.11, <c>EINVAL</c>, no libc).
    /// </summary>
    public static SafeFileHandle? TryOpenUnnamed(string directory, UnixFileMode mode)
    {
        if (!OperatingSystem.IsLinux() || OTmpFile == 0)
        {
            return null;
        }

        int fd;
        try
        {
            fd = open(PathBytes(directory), OTmpFile | OWriteOnly | OCloseOnExec, (int)mode);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }

        if (fd >= 0)
        {
            return new SafeFileHandle(fd, ownsHandle: true);
        }

        int errno = Marshal.GetLastPInvokeError();
        return errno is EOPNOTSUPP or EISDIR or EINVAL ? null : throw Error(errno, directory);
    }

    /// <summary>
    /// Gives the unnamed file <paramref name="handle"/> the name <paramref name="path"/>; never replaces an existing file
    /// (<see cref="IOException"/> then). Links <c>/proc/self/fd/N</c> with <c>AT_SYMLINK_FOLLOW</c>, which needs no
    /// privilege; without <c>/proc</c> it tries <c>AT_EMPTY_PATH</c> on the descriptor, which needs
    /// <c>CAP_DAC_READ_SEARCH</c> before Linux 6.10.
    /// </summary>
    public static void Link(SafeFileHandle handle, string path)
    {
        int fd = (int)handle.DangerousGetHandle();
        string procPath = "/proc/self/fd/" + fd.ToString(System.Globalization.CultureInfo.InvariantCulture);
        int result = File.Exists(procPath)
            ? linkat(AtFdCwd, PathBytes(procPath), AtFdCwd, PathBytes(path), AtSymlinkFollow)
            : linkat(fd, [0], AtFdCwd, PathBytes(path), AtEmptyPath);
        if (result != 0)
        {
            throw Error(Marshal.GetLastPInvokeError(), path);
        }
    }

    /// <summary>The owner (uid) of <paramref name="path"/> if it is a regular file (not following a symbolic link), else null.</summary>
    public static uint? RegularFileOwner(string path)
    {
        byte[] buffer = new byte[256];
        try
        {
            if (statx(AtFdCwd, PathBytes(path), AtSymlinkNoFollow, StatxType | StatxUid, buffer) != 0)
            {
                return null;
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }

        // struct statx: stx_uid at offset 20, stx_mode at offset 28 (the same layout on every architecture).
        const int TypeMask = 0xF000, RegularFile = 0x8000;
        bool regular = (BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(28)) & TypeMask) == RegularFile;
        return regular ? BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(20)) : null;
    }

    /// <summary>
    /// The identity of the file at <paramref name="path"/> (symbolic links followed): its device and inode, equal for
    /// every name of one file (hard links included); null when it does not exist or this is not Linux.
    /// </summary>
    public static (uint DeviceMajor, uint DeviceMinor, ulong Inode)? FileIdentity(string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        byte[] buffer = new byte[256];
        try
        {
            if (statx(AtFdCwd, PathBytes(path), 0, StatxIno, buffer) != 0)
            {
                return null;
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }

        // struct statx: stx_ino at offset 32, stx_dev_major at 136, stx_dev_minor at 140.
        return (BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(136)), BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(140)), BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(32)));
    }

    /// <summary>The effective user id of this process.</summary>
    public static uint EffectiveUserId() => geteuid();

    /// <summary>A path as libc takes it: NUL-terminated UTF-8.</summary>
    public static byte[] PathBytes(string path)
    {
        byte[] bytes = new byte[Encoding.UTF8.GetByteCount(path) + 1];
        Encoding.UTF8.GetBytes(path, bytes);
        return bytes;
    }

    private static Exception Error(int errno, string path)
    {
        string message = $"{Marshal.GetPInvokeErrorMessage(errno)}: '{path}'";
        return errno switch
        {
            EEXIST => new IOException($"The output file '{path}' already exists."),
            ENOENT => new DirectoryNotFoundException(message),
            EACCES => new UnauthorizedAccessException(message),
            _ => new IOException(message),
        };
    }

#pragma warning disable SYSLIB1054 // LibraryImport needs unsafe code, which this assembly does not allow; these signatures are blittable.
    [DllImport("libc", SetLastError = true)]
    private static extern int open(byte[] path, int flags, int mode);

    [DllImport("libc", SetLastError = true)]
    private static extern int linkat(int oldDirectory, byte[] oldPath, int newDirectory, byte[] newPath, int flags);

    [DllImport("libc", SetLastError = true)]
    private static extern int statx(int directory, byte[] path, int flags, uint mask, byte[] buffer);

    [DllImport("libc")]
    private static extern uint geteuid();
#pragma warning restore SYSLIB1054
}
