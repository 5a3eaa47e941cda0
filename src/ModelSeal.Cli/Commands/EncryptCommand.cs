using System.CommandLine;

namespace ModelSeal.Cli.Commands;

/// <summary><c>modelseal encrypt INPUT --key FILE --model-id ID --model-version V --out OUTPUT [--force] [--json]</c>.</summary>
internal sealed class EncryptCommand : VerbCommand
{
    private const string Summary = """
        Seal a model file: encrypt and authenticate it with a data key, recording its id and version.

        Examples:
          modelseal encrypt model.onnx --key dev.key --model-id classifier --model-version 1.2.0 --out model.mseal
        """;

    public EncryptCommand(CliContext context)
        : base("encrypt", Summary, context)
    {
        Add(InputArgument);
        Add(KeyOption);
        Add(ModelIdOption);
        Add(ModelVersionOption);
        Add(OutOption);
        Add(ForceOption);
        Add(JsonOption);
    }

    public Argument<string> InputArgument { get; } = VerbOptions.Input("The model file to seal (.onnx, .ort, .tflite or any file).");

    public Option<string> KeyOption { get; } = VerbOptions.Key();

    public Option<string> ModelIdOption { get; } = VerbOptions.Identifier(
        "--model-id", "model id", Identifier.MaxIdLength, "ID", "The model id to record (letters, digits, '.', '_', '-').", required: true);

    public Option<string> ModelVersionOption { get; } = VerbOptions.Identifier(
        "--model-version", "model version", Identifier.MaxVersionLength, "VERSION", "The model version to record (letters, digits, '.', '_', '-').", required: true);

    public Option<string> OutOption { get; } = VerbOptions.Out("The sealed model to write (customarily *" + SealedModel.FileExtension + ").");

    public Option<bool> ForceOption { get; } = VerbOptions.Force();

    public Option<bool> JsonOption { get; } = VerbOptions.Json();

    protected override string? GetInputPath(ParseResult result) => result.GetValue(InputArgument);

    protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
    {
        string input = result.GetRequiredValue(InputArgument);
        string output = result.GetRequiredValue(OutOption);
        bool force = result.GetValue(ForceOption);
        Files.RequireInputFile(input);
        Files.CheckOutput(output, input, force);
        using ModelKey key = Keys.Load(result.GetRequiredValue(KeyOption));

        long start = Context.Time.GetTimestamp();
        await using FileStream source = Files.OpenInput(input);
        if (!source.CanSeek)
        {
            throw new CliException(ExitCodes.IoError, $"the input {ErrorReporter.Quote(input)} is not a regular file.", "copy it to a file first: sealing needs the model's length up front.");
        }

        if (await IsSealedModelAsync(source, cancellationToken).ConfigureAwait(false))
        {
            Context.WriteWarning($"{ErrorReporter.Quote(input)} is already a sealed model; sealing it again.");
        }

        source.Position = 0;
        cancellationToken.ThrowIfCancellationRequested();
        var options = new SealOptions
        {
            ModelId = result.GetRequiredValue(ModelIdOption),
            ModelVersion = result.GetRequiredValue(ModelVersionOption),
        };
        SealedModelHeader header;
        await using (AtomicFile file = AtomicFile.Create(output, force))
        {
            using (ProgressBar? progress = ProgressBar.Create(Context, "sealing", source.Length))
            {
                header = await SealedModel.SealAsync(source, file.Stream, key, options, progress, cancellationToken).ConfigureAwait(false);
            }

            await file.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        TimeSpan elapsed = Context.Since(start);
        if (result.GetValue(JsonOption))
        {
            CliJsonContext.Write(Context, new EncryptResult(
                input, output, header.ModelId, header.ModelVersion, header.KeyId, header.ContentType.ToName(), header.PlaintextLength,
                header.ChunkCount, header.Length, header.SealedLength, header.SealedAt, (long)elapsed.TotalMilliseconds));
        }
        else
        {
            Context.Out.WriteLine($"sealed {input} → {output}: {Text.Describe(header)} in {Text.Duration(elapsed)}");
        }

        return ExitCodes.Success;
    }

    private static async Task<bool> IsSealedModelAsync(FileStream source, CancellationToken cancellationToken)
    {
        byte[] prefix = new byte[SealedModelHeader.Magic.Length];
        int read = await source.ReadAtLeastAsync(prefix, prefix.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        return read == prefix.Length && prefix.AsSpan().SequenceEqual(SealedModelHeader.Magic);
    }
}
