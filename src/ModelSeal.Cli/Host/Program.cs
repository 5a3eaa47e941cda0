using System.CommandLine;
using ModelSeal.Cli.Commands;

namespace ModelSeal.Cli.Host;

/// <summary>The <c>modelseal</c> executable.</summary>
internal static class Program
{
    /// <summary>
    /// Wires the real console and the signals (SIGINT, SIGTERM, SIGHUP: <see cref="Interruption"/>), then runs
    /// <see cref="Cli.RunAsync(string[], CliContext, CancellationToken)"/>.
    /// </summary>
    public static async Task<int> Main(string[] args)
    {
        // .NET runs SIGHUP handlers on the thread pool (SIGINT and SIGTERM get a thread of their own), which a parallel
        // decryption keeps busy: without spare threads a SIGHUP would wait until the work is done.
        ThreadPool.GetMinThreads(out int workerThreads, out int completionPortThreads);
        ThreadPool.SetMinThreads(workerThreads + 2, completionPortThreads);
        using Interruption interruption = Interruption.Register(Console.Error);
        var context = new CliContext(Console.Out, Console.Error, Interactive: !Console.IsErrorRedirected) { Interruption = interruption };
        return await Cli.RunAsync(args, context, interruption.Token).ConfigureAwait(false);
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
                new AdminCredentialCommand(context),
                new ModelCommand(context),
                new LicenceCommand(context),
                new UserCommand(context),
                new AttestationCommand(context),
                new TokenCommand(context),
                new AuditCommand(context),
                new UsageCommand(context),
                new BenchCommand(context),
                new BenchChildCommand(context),
            },
        };
    }
}
