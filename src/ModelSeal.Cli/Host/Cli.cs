using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;

namespace ModelSeal.Cli.Host;

/// <summary>Runs the CLI in-process: the whole program except the process-level wiring done by <see cref="Program.Main"/>.</summary>
internal static class Cli
{
    /// <summary>Parses <paramref name="args"/>, runs the verb and returns its exit code (see <see cref="ExitCodes"/>).</summary>
    public static Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, bool interactive, CancellationToken cancellationToken) =>
        RunAsync(args, new CliContext(stdout, stderr, interactive), cancellationToken);

    /// <inheritdoc cref="RunAsync(string[], TextWriter, TextWriter, bool, CancellationToken)"/>
    public static async Task<int> RunAsync(string[] args, CliContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(context);
        RootCommand root = Program.CreateRootCommand(context);
        ParseResult result = root.Parse(args);
        if (result.Action is ParseErrorAction)
        {
            ReportUsageErrors(context, result);
            return ExitCodes.Usage;
        }

        var configuration = new InvocationConfiguration
        {
            Output = context.Out,
            Error = context.Error,
            // The verbs map every exception to an exit code themselves (CommandRunner); anything that still escapes
            // is reported below rather than by System.CommandLine's handler, which prints a stack trace.
            EnableDefaultExceptionHandler = false,
            // Program.Main owns SIGINT/SIGTERM/SIGHUP handling (Interruption) and passes it in as the cancellation token.
            ProcessTerminationTimeout = null,
        };
        try
        {
            return await result.InvokeAsync(configuration, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return context.Interruption.Report(context);
        }
    }

    private static void ReportUsageErrors(CliContext context, ParseResult result)
    {
        foreach (ParseError error in result.Errors)
        {
            context.WriteError(error.Message);
        }

        string verb = result.CommandResult.Command is RootCommand ? string.Empty : result.CommandResult.Command.Name + " ";
        context.Error.WriteLine($"hint: run 'modelseal {verb}--help' for usage.");
    }
}
