namespace ModelSeal.Cli;

/// <summary>Where a run of the CLI writes, and the few facts about its environment that change its behaviour.</summary>
/// <param name="Out">Standard output: summaries and JSON. Never plaintext model bytes, never key bytes.</param>
/// <param name="Error">Standard error: errors, hints, warnings and the progress bar.</param>
/// <param name="Interactive">True when standard error is a terminal: long operations then draw a progress bar.</param>
internal sealed record CliContext(TextWriter Out, TextWriter Error, bool Interactive)
{
    /// <summary>The clock for elapsed times and progress throttling.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>
    /// Makes <c>decrypt</c> stream on one thread, as it does for input it cannot seek (a pipe), instead of decrypting
    /// in parallel with positional reads and writes. Only tests set it.
    /// </summary>
    public bool StreamingDecrypt { get; init; }

    /// <summary>The signals that cancel the run, and the one report of it (<see cref="Interruption.Report(CliContext)"/>).</summary>
    public Interruption Interruption { get; init; } = new();

    /// <summary>Standard input, for the input <c>-</c> (tests give a stream of their own).</summary>
    public Func<Stream> OpenStandardInput { get; init; } = Console.OpenStandardInput;

    /// <summary>
    /// The width of the terminal standard error is, in columns, read at each redraw of the progress bar (the window
    /// may be resized); null when it is not a terminal or cannot be told.
    /// </summary>
    public Func<int?> TerminalWidth { get; init; } = StandardErrorWidth;

    /// <summary>Operations on more model bytes than this draw a progress bar (when <see cref="Interactive"/>).</summary>
    public long ProgressThreshold { get; init; } = 8L * 1024 * 1024;

    /// <summary>
    /// How to start this program again (executable, then leading arguments), for the fresh processes of
    /// <c>modelseal bench</c>: the app host itself, or the <c>dotnet</c> host with ModelSeal.Cli.dll.
    /// </summary>
    public IReadOnlyList<string> SelfCommand { get; init; } = DefaultSelfCommand();

    /// <summary>Time elapsed since <paramref name="startTimestamp"/> (from <see cref="Time"/>).</summary>
    public TimeSpan Since(long startTimestamp) => Time.GetElapsedTime(startTimestamp);

    /// <summary>Writes <c>error: …</c> and, if given, <c>hint: …</c> to standard error.</summary>
    public void WriteError(string message, string? hint = null)
    {
        Error.WriteLine("error: " + Text.Safe(message));
        if (hint is not null)
        {
            Error.WriteLine("hint: " + Text.Safe(hint));
        }
    }

    /// <summary>Writes <c>warning: …</c> to standard error.</summary>
    public void WriteWarning(string message) => Error.WriteLine("warning: " + Text.Safe(message));

    private static int? StandardErrorWidth()
    {
        try
        {
            return Console.IsErrorRedirected || Console.WindowWidth <= 0 ? null : Console.WindowWidth;
        }
        catch (Exception e) when (e is IOException or PlatformNotSupportedException or InvalidOperationException)
        {
            return null;
        }
    }

    private static string[] DefaultSelfCommand()
    {
        string? process = Environment.ProcessPath;
        string assembly = typeof(CliContext).Assembly.Location;
        if (process is null || assembly.Length == 0 || Path.GetFileName(process) is "ModelSeal.Cli" or "ModelSeal.Cli.exe" or "modelseal" or "modelseal.exe")
        {
            return [process ?? "modelseal"]; // the app host, a single-file or a native build
        }

        // Run through the dotnet host (`dotnet ModelSeal.Cli.dll`, or a test host that references the CLI).
        string? host = Path.GetFileNameWithoutExtension(process) == "dotnet" ? process : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        return [string.IsNullOrEmpty(host) ? "dotnet" : host, assembly];
    }
}
