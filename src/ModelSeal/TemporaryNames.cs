using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace ModelSeal;

/// <summary>
/// The hidden names <see cref="AtomicFile"/> gives content before it is in place,
/// <c>.NAME.PID.HOST.RANDOM.modelseal-tmp</c>, and the removal of those that earlier processes left behind.
/// </summary>
internal static class TemporaryNames
{
    /// <summary>The suffix of every temporary name.</summary>
    public const string Suffix = ".modelseal-tmp";

    // NAME is cut to this many characters so that the whole name stays within the 255 bytes file systems allow.
    private const int MaxNameLength = 128;

    private static readonly System.Buffers.SearchValues<char> LowerHex = System.Buffers.SearchValues.Create("0123456789abcdef");

    /// <summary>
    /// This host and PID namespace, as 8 hex digits (from the host name and, on Linux, <c>/proc/self/ns/pid</c>): a PID
    /// means something only there. Distinguishes containers sharing a directory, and hosts sharing a network file system.
    /// </summary>
    public static readonly string Host = ComputeHost();

    /// <summary>A fresh temporary name for the target file name <paramref name="name"/>, owned by this process.</summary>
    public static string New(string name) =>
        string.Create(CultureInfo.InvariantCulture, $".{Cut(name)}.{Environment.ProcessId}.{Host}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}{Suffix}");

    /// <summary>
    /// Deletes, in <paramref name="directory"/>, the temporary files of earlier writes of <paramref name="name"/> whose
    /// process no longer runs: same NAME, same HOST, owned by this user (on Linux), a regular file. Best effort: a file
    /// that cannot be deleted is left alone.
    /// </summary>
    public static void RemoveStale(string directory, string name)
    {
        string prefix = "." + Cut(name) + ".";
        var options = new EnumerationOptions { AttributesToSkip = 0, MatchType = MatchType.Simple, IgnoreInaccessible = true };
        try
        {
            foreach (string path in Directory.EnumerateFiles(directory, "*" + Suffix, options))
            {
                string file = Path.GetFileName(path);
                if (file.StartsWith(prefix, StringComparison.Ordinal)
                    && TryParse(file.AsSpan(prefix.Length, file.Length - prefix.Length - Suffix.Length), out int pid, out string host)
                    && host == Host
                    && IsStale(path, pid))
                {
                    File.Delete(path);
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Cleaning up is not the caller's task; it fails only for a directory it cannot list or change.
        }
    }

    // PID.HOST.RANDOM: decimal digits, 8 and 16 lower-case hex digits.
    private static bool TryParse(ReadOnlySpan<char> middle, out int pid, out string host)
    {
        pid = 0;
        host = string.Empty;
        int first = middle.IndexOf('.');
        if (first <= 0 || middle.Length != first + 1 + 8 + 1 + 16 || middle[first + 9] != '.'
            || !int.TryParse(middle[..first], NumberStyles.None, CultureInfo.InvariantCulture, out pid)
            || !IsHex(middle.Slice(first + 1, 8)) || !IsHex(middle[(first + 10)..]))
        {
            return false;
        }

        host = middle.Slice(first + 1, 8).ToString();
        return true;
    }

    private static bool IsHex(ReadOnlySpan<char> text) => !text.ContainsAnyExcept(LowerHex);

    private static bool IsStale(string path, int pid)
    {
        if (pid == Environment.ProcessId || IsRunning(pid))
        {
            return false;
        }

        return !OperatingSystem.IsLinux() || LinuxFileCalls.RegularFileOwner(path) == LinuxFileCalls.EffectiveUserId();
    }

    private static bool IsRunning(int pid)
    {
        if (OperatingSystem.IsLinux())
        {
            // /proc/PID/stat: "PID (COMM) STATE …". A zombie (Z) or dead (X) process writes nothing more, though its
            // PID stays taken until its parent reaps it (which PID 1 of a container may do late).
            try
            {
                string stat = File.ReadAllText($"/proc/{pid}/stat");
                int end = stat.LastIndexOf(')');
                return end < 0 || end + 2 >= stat.Length || stat[end + 2] is not ('Z' or 'X');
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                return false;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return true; // cannot tell: keep the file
            }
        }

        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false; // no process with this id
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or NotSupportedException or PlatformNotSupportedException)
        {
            return true; // cannot tell: keep the file
        }
    }

    private static string Cut(string name) => name.Length <= MaxNameLength ? name : name[..MaxNameLength];

    private static string ComputeHost()
    {
        string pidNamespace = string.Empty;
        if (OperatingSystem.IsLinux())
        {
            try
            {
                pidNamespace = new FileInfo("/proc/self/ns/pid").LinkTarget ?? string.Empty;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }

        byte[] hash = SHA256.HashData(Encoding.UTF8.GetBytes(Environment.MachineName + "\n" + pidNamespace));
        return Convert.ToHexStringLower(hash.AsSpan(0, 4));
    }
}
