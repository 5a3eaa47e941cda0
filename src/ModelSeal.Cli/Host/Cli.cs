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
        if (args.Length == 0)
        {
            // Bare `modelseal`: the usage, on standard error, as a usage error (nothing was asked).
            await root.Parse(["--help"]).InvokeAsync(new InvocationConfiguration { Output = context.Error }, cancellationToken).ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        // `modelseal help [VERB …]` is `modelseal [VERB …] --help`.
        ParseResult result;
        try
        {
            result = root.Parse(args[0] == "help" ? [.. args[1..], "--help"] : args);
        }
        catch (InvalidOperationException e)
        {
            // A validator that read a value which did not convert: the conversion's message is the usage error.
            context.WriteError(UsageMessages.Rephrase(e.Message), $"run '{UsageMessages.CommandPath(root, args)} --help' for usage.");
            return ExitCodes.Usage;
        }

        if (result.Action is ParseErrorAction)
        {
            ReportUsageErrors(context, result, root, args);
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

    private static void ReportUsageErrors(CliContext context, ParseResult result, RootCommand root, string[] args)
    {
        // An unknown verb also reports that no verb was given; the first says it all.
        foreach (ParseError error in result.Errors.Where(e => result.Errors.Count == 1 || e.Message != "Required command was not provided."))
        {
            context.WriteError(UsageMessages.Rephrase(error.Message));
        }

        Command command = result.CommandResult.Command;
        string? typed = command is RootCommand && !args[0].StartsWith('-') ? args[0] : null;
        if (typed is not null && Closest(typed, root.Subcommands.SelectMany(c => c.Aliases.Prepend(c.Name))) is { } verb)
        {
            context.Error.WriteLine(Text.Safe($"hint: did you mean 'modelseal {verb}'? ('modelseal --help' lists the verbs.)"));
            return;
        }

        context.Error.WriteLine($"hint: run '{UsageMessages.CommandPath(result.CommandResult)} --help' for usage.");
    }

    /// <summary>The name closest to <paramref name="typed"/> within two edits (a typo), or null.</summary>
    internal static string? Closest(string typed, IEnumerable<string> names) =>
        names.Select(name => (name, distance: Distance(typed.ToLowerInvariant(), name)))
            .Where(c => c.distance <= Math.Min(2, Math.Max(1, c.name.Length / 3)))
            .OrderBy(c => c.distance)
            .Select(c => c.name)
            .FirstOrDefault();

    /// <summary>The optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps.</summary>
    private static int Distance(string a, string b)
    {
        int[,] d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (int j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }

        return d[a.Length, b.Length];
    }
}
