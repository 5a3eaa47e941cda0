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
    /// Largest model that <c>decrypt</c> decrypts whole in memory before writing; larger ones are streamed into the
    /// temporary output file. Only tests lower it.
    /// </summary>
    public long MaxInMemoryModelLength { get; init; } = Array.MaxLength;

    /// <summary>Operations on more model bytes than this draw a progress bar (when <see cref="Interactive"/>).</summary>
    public long ProgressThreshold { get; init; } = 8L * 1024 * 1024;

    /// <summary>Time elapsed since <paramref name="startTimestamp"/> (from <see cref="Time"/>).</summary>
    public TimeSpan Since(long startTimestamp) => Time.GetElapsedTime(startTimestamp);

    /// <summary>Writes <c>error: …</c> and, if given, <c>hint: …</c> to standard error.</summary>
    public void WriteError(string message, string? hint = null)
    {
        Error.WriteLine("error: " + message);
        if (hint is not null)
        {
            Error.WriteLine("hint: " + hint);
        }
    }

    /// <summary>Writes <c>warning: …</c> to standard error.</summary>
    public void WriteWarning(string message) => Error.WriteLine("warning: " + message);
}
