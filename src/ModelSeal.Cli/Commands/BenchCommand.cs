using System.CommandLine;
using System.Text;
using ModelSeal.Cli.Bench;

namespace ModelSeal.Cli.Commands;

/// <summary>
/// <c>modelseal bench [--full] [--model FILE]... [--threads N] [--out FILE.md] [--json]</c>: the paper-style table on this machine
/// (see <see cref="BenchSuite"/>), with the AES-256-GCM ceiling measured by OpenSSL in the same run.
/// </summary>
internal sealed class BenchCommand : VerbCommand
{
    private const string Summary = """
        Measure sealing and opening on this machine: for the published design's six model sizes (random data), the
        bundled sample model and any --model files, the encryption time, the decryption time on 1 thread and on all
        threads, and a cold load in a fresh process next to simply reading the plaintext into fresh memory; plus the
        AES-256-GCM ceiling from 'openssl speed' (if installed). Takes about half a minute; --full takes longer and is
        steadier. Writes nothing but temporary files (deleted) and, with --out, the report.

        Examples:
          modelseal bench
          modelseal bench --full --model my-model.onnx --out bench.md
          modelseal bench --json > bench.json
        """;

    public BenchCommand(CliContext context)
        : base("bench", Summary, context)
    {
        Add(FullOption);
        Add(ModelOption);
        Add(ThreadsOption);
        Add(OutOption);
        Add(ForceOption);
        Add(JsonOption);
    }

    public Option<bool> JsonOption { get; } = VerbOptions.Json();

    public Option<bool> FullOption { get; } = new("--full") { Description = "More repetitions (21 warm runs, 9 fresh processes, 3-second OpenSSL runs): about 2 minutes." };

    public Option<string[]> ModelOption { get; } = new("--model")
    {
        HelpName = "FILE",
        Description = "Also measure this model file (repeatable).",
        AllowMultipleArgumentsPerToken = false,
    };

    public Option<int?> ThreadsOption { get; } = CreateThreadsOption();

    public Option<string> OutOption { get; } = new("--out") { HelpName = "FILE", Description = "Also write the report to this Markdown file." };

    public Option<bool> ForceOption { get; } = VerbOptions.Force();

    protected override string? GetOutputPath(ParseResult result) => result.GetValue(OutOption);

    protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
    {
        string[] extra = result.GetValue(ModelOption) ?? [];
        string? output = result.GetValue(OutOption);
        foreach (string path in extra)
        {
            Files.RequireInputFile(path);
        }

        if (output is not null)
        {
            Files.CheckOutput(output, result.GetValue(ForceOption));
        }

        bool full = result.GetValue(FullOption);
        var settings = new BenchSettings(Runs: full ? 21 : 5, ColdRuns: full ? 9 : 3, Threads: result.GetValue(ThreadsOption) ?? Environment.ProcessorCount, OpenSslSeconds: full ? 3 : 1);

        var models = new List<BenchModel>();
        for (int i = 0; i < BenchSuite.PaperSizes.Length; i++)
        {
            (double mib, double? paper) = BenchSuite.PaperSizes[i];
            models.Add(new BenchModel($"random {mib} MiB", BenchSuite.RandomModel(mib, seed: i + 1), paper));
        }

        models.Add(new BenchModel("sample classifier (ONNX)", await DemoCommand.ReadSampleAsync(cancellationToken).ConfigureAwait(false), null));
        foreach (string path in extra)
        {
            models.Add(new BenchModel(Path.GetFileName(path), await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false), null));
        }

        var suite = new BenchSuite(settings, Context.SelfCommand, Context.Error);
        DirectoryInfo work = Directory.CreateTempSubdirectory("modelseal-bench-");
        var rows = new List<BenchRow>();
        try
        {
            foreach (BenchModel model in models)
            {
                Context.Error.WriteLine($"measuring {model.Name} ({Text.Plural(model.Plaintext.Length, "byte")})");
                rows.Add(await suite.MeasureAsync(model, work.FullName, cancellationToken).ConfigureAwait(false));
            }
        }
        finally
        {
            work.Delete(recursive: true);
        }

        Context.Error.WriteLine("measuring the AES-256-GCM ceiling with openssl speed");
        OpenSslCeiling ceiling = await suite.MeasureOpenSslAsync(cancellationToken).ConfigureAwait(false);
        string report = BenchReport.Format(rows, ceiling, settings);
        if (result.GetValue(JsonOption))
        {
            CliJsonContext.Write(Context, BenchReport.ToJson(rows, ceiling, settings), BenchJsonContext.Default);
        }
        else
        {
            Context.Out.Write(report);
        }

        if (output is not null)
        {
            await using AtomicFile file = AtomicFile.Create(output, result.GetValue(ForceOption));
            await file.Stream.WriteAsync(Encoding.UTF8.GetBytes(report), cancellationToken).ConfigureAwait(false);
            await file.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        return ExitCodes.Success;
    }

    private static Option<int?> CreateThreadsOption()
    {
        var option = new Option<int?>("--threads")
        {
            HelpName = "N",
            Description = "Threads for the parallel column [default: the processor count].",
        };
        option.Validators.Add(r =>
        {
            // Only a number out of range: a value that is not a number is already a parse error (reading it would throw).
            if (r.Tokens.Count > 0 && int.TryParse(r.Tokens[^1].Value, System.Globalization.CultureInfo.InvariantCulture, out int threads) && threads is < 1 or > 64)
            {
                r.AddError("--threads must be between 1 and 64.");
            }
        });
        return option;
    }
}

/// <summary>The hidden <c>bench-child</c> verb: one fresh-process measurement for <see cref="BenchCommand"/>.</summary>
internal sealed class BenchChildCommand : VerbCommand
{
    public BenchChildCommand(CliContext context)
        : base(BenchChild.Verb, "Internal to 'modelseal bench'.", context)
    {
        Hidden = true;
        Add(ChildArguments);
    }

    public Argument<string[]> ChildArguments { get; } = new("ARGS") { Arity = ArgumentArity.OneOrMore };

    protected override Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken) =>
        BenchChild.RunAsync(result.GetValue(ChildArguments) ?? [], Context.Out);
}
