namespace ModelSeal.Cli;

/// <summary>Checks of input and output paths, done before any work so that a refused command changes nothing.</summary>
internal static class Files
{
    /// <summary>The input name that means standard input (as in age and most Unix tools).</summary>
    public const string StandardInput = "-";

    /// <summary>
    /// Opens an input: <c>-</c> is standard input; a path is opened unbuffered (the library reads in large pieces),
    /// sequential, asynchronous. A pipe (<c>-</c>, <c>/dev/stdin</c>, process substitution) cannot seek.
    /// </summary>
    public static Stream OpenInput(CliContext context, string path) =>
        path == StandardInput
            ? context.OpenStandardInput()
            : new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.SequentialScan | FileOptions.Asynchronous);

    /// <summary>
    /// The sealed model from its first byte again, now that its header was read from <paramref name="source"/>: a
    /// seekable input is rewound, a pipe replays the header before the rest.
    /// </summary>
    public static Stream FromTheStart(Stream source, SealedModelHeader header)
    {
        if (!source.CanSeek)
        {
            return new HeaderReplayStream(header.Encoded.ToArray(), source);
        }

        source.Position = 0;
        return source;
    }

    /// <summary>
    /// Fails with <see cref="ExitCodes.AuthenticationFailed"/> when the length of a seekable sealed model differs from the
    /// length its header declares: a truncated or extended file is said to be one, without using the key.
    /// </summary>
    public static void RequireDeclaredLength(Stream source, SealedModelHeader header, string input)
    {
        if (!source.CanSeek || source.Length == header.SealedLength)
        {
            return;
        }

        long found = source.Length, expected = header.SealedLength;
        throw found < expected
            ? new CliException(
                ExitCodes.AuthenticationFailed,
                $"{ErrorReporter.Quote(input)} is truncated: its header declares {Text.Plural(expected, "byte")}, the file has {Text.Count(found)} ({Text.Count(expected - found)} missing). Nothing was written.",
                "get a complete copy of the file: a download or copy was cut short.")
            : new CliException(
                ExitCodes.AuthenticationFailed,
                $"{ErrorReporter.Quote(input)} is longer than its header declares: expected {Text.Plural(expected, "byte")}, found {Text.Count(found)} ({Text.Count(found - expected)} extra). Nothing was written.",
                "get an unmodified copy of the file: something was appended to it.");
    }

    /// <summary>Fails with <see cref="ExitCodes.IoError"/> unless <paramref name="path"/> is an existing file (or <c>-</c>).</summary>
    public static void RequireInputFile(string path)
    {
        if (path == StandardInput)
        {
            return;
        }

        if (Directory.Exists(path))
        {
            throw new CliException(ExitCodes.IoError, $"the input {ErrorReporter.Quote(path)} is a directory, not a file.", "pass the path of a file.");
        }

        if (!File.Exists(path))
        {
            throw new CliException(ExitCodes.IoError, $"the input file {ErrorReporter.Quote(path)} does not exist.", "check the path.");
        }
    }

    /// <summary>
    /// Fails unless <paramref name="output"/> can be written: a file path (not standard output, not any of
    /// <paramref name="inputs"/>: the input, the key file, a credential), in an existing directory, and not an existing
    /// file unless <paramref name="force"/> (null: the verb has no --force).
    /// </summary>
    public static void CheckOutput(string output, bool? force, params (string What, string? Path)[] inputs)
    {
        if (output == "-")
        {
            throw new CliException(ExitCodes.Usage, "--out must be a file path; modelseal never writes to standard output.", "give a file name with --out.");
        }

        string full = Path.GetFullPath(output);
        if (IsSpecialPath(full))
        {
            throw new CliException(ExitCodes.Usage, $"--out {ErrorReporter.Quote(output)} is not a path for a regular file.", "give a file name in a normal directory.");
        }

        foreach ((string what, string? input) in inputs)
        {
            if (input is not null && input != StandardInput && FileIdentity.SameFile(input, output))
            {
                throw new CliException(ExitCodes.Usage, $"--out {ErrorReporter.Quote(output)} is {what} {ErrorReporter.Quote(input)} itself.", "choose a different --out path; modelseal never overwrites one of its inputs.");
            }
        }

        if (Directory.Exists(full))
        {
            throw new CliException(ExitCodes.IoError, $"the output {ErrorReporter.Quote(output)} is a directory.", "give a file path with --out.");
        }

        if (File.Exists(full) && force is not true)
        {
            throw new CliException(
                ExitCodes.IoError,
                $"the output file {ErrorReporter.Quote(output)} already exists.",
                force is null ? "choose another --out path; this command never replaces an existing file." : "pass --force to replace it.");
        }

        string directory = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(directory))
        {
            throw new CliException(ExitCodes.IoError, $"the output directory {ErrorReporter.Quote(directory)} does not exist.", "create it first, or choose another --out path.");
        }
    }

    // Device and process pseudo-files (/dev/stdout, /proc/self/fd/1): the atomic rename would replace them.
    private static bool IsSpecialPath(string full) =>
        !OperatingSystem.IsWindows()
        && (full.StartsWith("/dev/", StringComparison.Ordinal) || full.StartsWith("/proc/", StringComparison.Ordinal));
}
