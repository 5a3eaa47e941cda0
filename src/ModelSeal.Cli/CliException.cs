namespace ModelSeal.Cli;

/// <summary>An expected failure, already phrased for the user: exits with <see cref="ExitCode"/> and no stack trace.</summary>
internal sealed class CliException : Exception
{
    public CliException(int exitCode, string message, string? hint = null, Exception? innerException = null)
        : base(message, innerException)
    {
        ExitCode = exitCode;
        Hint = hint;
    }

    public CliException()
        : this(ExitCodes.Failure, "modelseal failed.")
    {
    }

    public CliException(string message)
        : this(ExitCodes.Failure, message)
    {
    }

    public CliException(string message, Exception innerException)
        : this(ExitCodes.Failure, message, null, innerException)
    {
    }

    /// <summary>One of <see cref="ExitCodes"/>.</summary>
    public int ExitCode { get; }

    /// <summary>What the user can do about it, or null.</summary>
    public string? Hint { get; }
}
