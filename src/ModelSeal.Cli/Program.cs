using System.CommandLine;
using System.Runtime.InteropServices;
using ModelSeal.Cli.Commands;

namespace ModelSeal.Cli;

/// <summary>The <c>modelseal</c> executable.</summary>
internal static class Program
{
    /// <summary>Wires the real console and Ctrl+C/SIGTERM cancellation, then runs <see cref="Cli.RunAsync(string[], TextWriter, TextWriter, bool, CancellationToken)"/>.</summary>
    public static async Task<int> Main(string[] args)
    {
        using var cancellation = new CancellationTokenSource();
        void OnCancelKeyPress(object? sender, ConsoleCancelEventArgs e)
        {
            // The first Ctrl+C cancels cleanly (temporary files are deleted); a second one kills the process.
            if (!cancellation.IsCancellationRequested)
            {
                e.Cancel = true;
                cancellation.Cancel();
            }
        }

        Console.CancelKeyPress += OnCancelKeyPress;
        using PosixSignalRegistration terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, signal =>
        {
            signal.Cancel = true;
            cancellation.Cancel();
        });
        try
        {
            return await Cli.RunAsync(args, Console.Out, Console.Error, interactive: !Console.IsErrorRedirected, cancellation.Token).ConfigureAwait(false);
        }
        finally
        {
            Console.CancelKeyPress -= OnCancelKeyPress;
        }
    }

    /// <summary>Builds the command tree, writing through <paramref name="context"/>. The seam for tests.</summary>
    internal static RootCommand CreateRootCommand(CliContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return new RootCommand("Seal ML model files with a data key, and verify, inspect and open sealed models.")
        {
            HelpName = "modelseal",
            Subcommands =
            {
                new KeygenCommand(context),
                new EncryptCommand(context),
                new DecryptCommand(context),
                new VerifyCommand(context),
                new InspectCommand(context),
                new DemoCommand(context),
                new ServeCommand(context),
                new MasterKeyCommand(context),
                new DatabaseCommand(context),
                new ModelCommand(context),
                new LicenseCommand(context),
                new TokenCommand(context),
                new AuditCommand(context),
                new BenchCommand(context),
                new BenchChildCommand(context),
            },
        };
    }
}
