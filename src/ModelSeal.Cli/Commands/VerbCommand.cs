using System.CommandLine;

namespace ModelSeal.Cli.Commands;

/// <summary>
/// Base of the verbs: runs <see cref="ExecuteAsync"/> and turns every exception into an exit code with an
/// <c>error:</c>/<c>hint:</c> message (<see cref="ErrorReporter"/>), never a stack trace.
/// </summary>
internal abstract class VerbCommand : Command
{
    protected VerbCommand(string name, string description, CliContext context)
        : base(name, description)
    {
        Context = context;
        SetAction(RunAsync);
    }

    protected CliContext Context { get; }

    /// <summary>Does the work and returns an exit code; throws for failures.</summary>
    protected abstract Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken);

    /// <summary>The input file named in the command line, used to phrase errors about it.</summary>
    protected virtual string? GetInputPath(ParseResult result) => null;

    /// <summary>The output file named in the command line, used to phrase failures to write it (a read-only directory, a full disk).</summary>
    protected virtual string? GetOutputPath(ParseResult result) => null;

    /// <summary>Prints the result: <paramref name="value"/> as one JSON object with --json, else the line <paramref name="text"/> (made terminal-safe).</summary>
    protected void WriteResult<T>(bool json, T value, string text)
    {
        if (json)
        {
            CliJsonContext.Write(Context, value);
        }
        else
        {
            Context.Out.WriteLine(Text.Safe(text));
        }
    }

    private async Task<int> RunAsync(ParseResult result, CancellationToken cancellationToken)
    {
        try
        {
            return await ExecuteAsync(result, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return Context.Interruption.Report(Context);
        }
        catch (Exception exception)
        {
            return ErrorReporter.Report(Context, exception, GetInputPath(result), GetOutputPath(result));
        }
    }
}
