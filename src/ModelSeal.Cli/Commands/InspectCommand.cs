using System.CommandLine;

namespace ModelSeal.Cli.Commands;

/// <summary><c>modelseal inspect INPUT [--json]</c>: prints the header; needs no key and authenticates nothing.</summary>
internal sealed class InspectCommand : VerbCommand
{
    private const string Summary = """
        Show a sealed model's header (ids, content type, sizes, chunk count) without a key. Authenticates nothing.

        Examples:
          modelseal inspect model.mseal
          modelseal inspect model.mseal --json
        """;

    public InspectCommand(CliContext context)
        : base("inspect", Summary, context)
    {
        Add(InputArgument);
        Add(JsonOption);
    }

    public Argument<string> InputArgument { get; } = VerbOptions.Input("The sealed model to inspect.");

    public Option<bool> JsonOption { get; } = VerbOptions.Json();

    protected override string? GetInputPath(ParseResult result) => result.GetValue(InputArgument);

    protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
    {
        string input = result.GetRequiredValue(InputArgument);
        Files.RequireInputFile(input);
        cancellationToken.ThrowIfCancellationRequested();
        SealedModelHeader header;
        long fileLength;
        await using (Stream source = Files.OpenInput(Context, input))
        {
            header = await SealedModelHeader.ReadAsync(source, cancellationToken).ConfigureAwait(false);
            fileLength = source.CanSeek ? source.Length : header.Length + await CountRestAsync(source, cancellationToken).ConfigureAwait(false);
        }

        long difference = fileLength - header.SealedLength;
        string? warning = difference switch
        {
            < 0 => $"the file is {Text.Plural(-difference, "byte")} shorter than the header declares (truncated?)",
            > 0 => $"the file is {Text.Plural(difference, "byte")} longer than the header declares (trailing data?)",
            _ => null,
        };

        if (result.GetValue(JsonOption))
        {
            CliJsonContext.Write(Context, new InspectResult(
                input, SealedModelHeader.FormatVersion, header.Length, header.ModelId, header.ModelVersion, header.KeyId,
                header.ContentType.ToName(), header.PlaintextLength, header.ChunkCount, header.PayloadLength, header.SealedLength,
                fileLength, header.SealedAt, difference == 0, warning));
            return ExitCodes.Success;
        }

        TextWriter o = Context.Out;
        o.WriteLine($"{input}: sealed model, format version {SealedModelHeader.FormatVersion}");
        o.WriteLine($"  model id       {header.ModelId}");
        o.WriteLine($"  model version  {header.ModelVersion}");
        o.WriteLine($"  key id         {header.KeyId}");
        o.WriteLine($"  content type   {header.ContentType.ToName()}");
        o.WriteLine($"  model size     {Text.Plural(header.PlaintextLength, "byte")}");
        o.WriteLine($"  chunks         {Text.Count(header.ChunkCount)}");
        o.WriteLine($"  header         {Text.Plural(header.Length, "byte")}");
        o.WriteLine($"  payload        {Text.Plural(header.PayloadLength, "byte")}");
        o.WriteLine($"  sealed size    {Text.Plural(header.SealedLength, "byte")} (file: {Text.Plural(fileLength, "byte")})");
        o.WriteLine($"  sealed at      {(header.SealedAt is { } at ? Text.Timestamp(at) : "not recorded")}");
        if (warning is not null)
        {
            Context.WriteWarning(warning);
        }

        o.WriteLine("note: inspect reads the header only and does not authenticate anything; run 'modelseal verify' with the key to check the file.");
        return ExitCodes.Success;
    }

    /// <summary>Reads a pipe to its end, counting the bytes: its length is known only then.</summary>
    private static async Task<long> CountRestAsync(Stream source, CancellationToken cancellationToken)
    {
        byte[] buffer = new byte[1024 * 1024];
        long total = 0;
        int read;
        while ((read = await source.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            total += read;
        }

        return total;
    }
}
