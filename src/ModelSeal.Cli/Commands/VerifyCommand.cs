using System.CommandLine;

namespace ModelSeal.Cli.Commands;

/// <summary><c>modelseal verify INPUT --key FILE [--json]</c>: authenticates every chunk and writes nothing.</summary>
internal sealed class VerifyCommand : VerbCommand
{
    private const string Summary = """
        Check a sealed model with its key: authenticate the header and every chunk, and write nothing.

        Examples:
          modelseal verify model.mseal --key dev.key
        """;

    public VerifyCommand(CliContext context)
        : base("verify", Summary, context)
    {
        Add(InputArgument);
        Add(KeyOption);
        Add(JsonOption);
    }

    public Argument<string> InputArgument { get; } = VerbOptions.Input("The sealed model to verify.");

    public Option<string> KeyOption { get; } = VerbOptions.Key();

    public Option<bool> JsonOption { get; } = VerbOptions.Json();

    protected override string? GetInputPath(ParseResult result) => result.GetValue(InputArgument);

    protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
    {
        string input = result.GetRequiredValue(InputArgument);
        string keyPath = result.GetRequiredValue(KeyOption);
        Files.RequireInputFile(input);
        using ModelKey key = Keys.Load(keyPath);

        long start = Context.Time.GetTimestamp();
        await using Stream source = Files.OpenInput(Context, input);
        SealedModelHeader header = await SealedModelHeader.ReadAsync(source, cancellationToken).ConfigureAwait(false);
        Files.RequireDeclaredLength(source, header, input);
        Keys.RequireKeyFor(header, key, input, keyPath);
        using (ProgressBar? progress = ProgressBar.Create(Context, "verifying", header.PlaintextLength))
        {
            header = await SealedModel.VerifyAsync(Files.FromTheStart(source, header), key, options: null, progress, cancellationToken).ConfigureAwait(false);
        }

        TimeSpan elapsed = Context.Since(start);
        if (result.GetValue(JsonOption))
        {
            CliJsonContext.Write(Context, new VerifyResult(
                input, header.ModelId, header.ModelVersion, header.KeyId, header.ContentType.ToName(), header.PlaintextLength,
                header.ChunkCount, header.SealedLength, header.SealedAt, (long)elapsed.TotalMilliseconds));
        }
        else
        {
            Context.Out.WriteLine($"verified {input}: {Text.Describe(header)}, every chunk authentic, in {Text.Duration(elapsed)}");
        }

        return ExitCodes.Success;
    }
}
