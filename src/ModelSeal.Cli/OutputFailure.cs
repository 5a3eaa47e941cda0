using System.Runtime.InteropServices;

namespace ModelSeal.Cli;

/// <summary>
/// Failures to write a command's output (a read-only directory or file system, a full disk), phrased for the user:
/// "cannot write OUTPUT: …" instead of the operating system's text, which names the hidden temporary file.
/// </summary>
internal static class OutputFailure
{
    private const int ENOSPC = 28;
    private const int EROFS = 30;
    private const int EDQUOT = 122;

    /// <summary>The exit code, message and hint when <paramref name="exception"/> is a failure to write <paramref name="output"/>, else null.</summary>
    public static (int ExitCode, string Message, string? Hint)? Describe(Exception exception, string output)
    {
        string full = Path.GetFullPath(output);
        string directory = Path.GetDirectoryName(full) ?? ".";
        string target = ErrorReporter.Quote(output);
        string where = ErrorReporter.Quote(directory);
        return exception switch
        {
            UnauthorizedAccessException e when Mentions(e, full, directory) => (
                ExitCodes.IoError,
                $"cannot write {target}: the directory {where} is read-only for you (permission denied).",
                $"choose an --out path in a directory you may write to, or make it writable (ls -ld {ErrorReporter.ShellQuote(directory)} shows its permissions)."),
            IOException e when Is(e, EROFS) => (
                ExitCodes.IoError,
                $"cannot write {target}: the directory {where} is on a read-only file system.",
                "choose an --out path on a writable file system."),
            IOException e when Is(e, ENOSPC) || Is(e, EDQUOT) => (
                ExitCodes.IoError,
                $"cannot write {target}: the disk is full{(Is(e, EDQUOT) ? " (your disk quota is used up)" : string.Empty)}. Nothing was written.",
                $"free space on the file system that holds {where} (df -h {ErrorReporter.ShellQuote(directory)} shows it), or choose an --out path on another one."),
            _ => null,
        };
    }

    // .NET's own exceptions carry the errno as HResult; the library's O_TMPFILE and linkat calls start the message with its text.
    private static bool Is(IOException e, int errno) =>
        e.HResult == errno || e.Message.StartsWith(Marshal.GetPInvokeErrorMessage(errno), StringComparison.Ordinal);

    // Permission denied for the output, its directory or its hidden temporary file (.NAME.…), not for an input beside it.
    private static bool Mentions(UnauthorizedAccessException e, string output, string directory) =>
        e.Message.Contains("'" + output + "'", StringComparison.Ordinal)
        || e.Message.Contains("'" + directory + "'", StringComparison.Ordinal)
        || e.Message.Contains("'" + Path.Combine(directory, "." + Path.GetFileName(output) + "."), StringComparison.Ordinal);
}
