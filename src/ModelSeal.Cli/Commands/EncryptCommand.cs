using System.CommandLine;
using ModelSeal.Protocol;

namespace ModelSeal.Cli.Commands;

/// <summary>
/// <c>modelseal encrypt INPUT --key FILE --model-id ID --model-version V --out OUTPUT [--force] [--json]</c>, or with
/// <c>--server URL</c> instead of <c>--key</c>: the server creates a new version and its data key, sealed with HPKE to
/// a publisher key this process generates, and the model is sealed locally with it.
/// </summary>
internal sealed class EncryptCommand : VerbCommand
{
    private const string Summary = """
        Seal a model file: encrypt and authenticate it with a data key, recording its id and version.

        Examples:
          modelseal encrypt model.onnx --key dev.key --model-id classifier --model-version 1.2.0 --out model.mseal
          modelseal encrypt model.onnx --server http://127.0.0.1:5380 --model-id classifier --out model.mseal
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
        Add(ServerOption);
        Add(AdminCredentialOption);
        Validators.Add(r =>
        {
            bool key = r.GetResult(KeyOption) is not null, server = r.GetResult(ServerOption) is not null;
            if (key && server)
            {
                r.AddError("Give either --key FILE (a local key) or --server URL (a new version on the key server), not both.");
            }
            else if (!key && !server && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("MODELSEAL_SERVER")))
            {
                r.AddError("Give --key FILE (a local key) or --server URL (a new version on the key server; or set MODELSEAL_SERVER).");
            }
            else if (key && r.GetResult(ModelVersionOption) is null)
            {
                r.AddError("--model-version is required with --key.");
            }
        });
    }

    public Option<Uri> ServerOption { get; } = ServerOptionsFactory.Server();

    public Option<string> AdminCredentialOption { get; } = ServerOptionsFactory.AdminCredentialFile();

    public Argument<string> InputArgument { get; } = VerbOptions.Input("The model file to seal (.onnx, .ort, .tflite or any file).");

    public Option<string> KeyOption { get; } = VerbOptions.Key(required: false);

    public Option<string> ModelIdOption { get; } = VerbOptions.Identifier(
        "--model-id", "model id", Identifier.MaxIdLength, "ID", "The model id to record (letters, digits, '.', '_', '-').", required: true);

    public Option<string> ModelVersionOption { get; } = VerbOptions.Identifier(
        "--model-version", "model version", Identifier.MaxVersionLength, "VERSION", "The model version to record (letters, digits, '.', '_', '-'); with --server, optional (the server numbers versions).", required: false);

    public Option<string> OutOption { get; } = VerbOptions.Out("The sealed model to write (customarily *" + SealedModel.FileExtension + ").");

    public Option<bool> ForceOption { get; } = VerbOptions.Force();

    public Option<bool> JsonOption { get; } = VerbOptions.Json();

    protected override string? GetInputPath(ParseResult result) => result.GetValue(InputArgument);

    protected override string? GetOutputPath(ParseResult result) => result.GetValue(OutOption);

    protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
    {
        string input = result.GetRequiredValue(InputArgument);
        string output = result.GetRequiredValue(OutOption);
        bool force = result.GetValue(ForceOption);
        Files.RequireInputFile(input);
        Files.CheckOutput(output, force, ("the input file", input), ("the key file", result.GetValue(KeyOption)), ("the admin credential file", result.GetValue(AdminCredentialOption)));
        long start = Context.Time.GetTimestamp();

        // Before any key exists (a server version would be created for nothing): sealing needs the length up front.
        await using Stream source = Files.OpenInput(Context, input);
        if (!source.CanSeek)
        {
            throw new CliException(ExitCodes.IoError, $"the input {ErrorReporter.Quote(input)} is not a regular file (a pipe or standard input).", "copy it to a file first: sealing records the model's length before its first byte.");
        }

        string modelId = result.GetRequiredValue(ModelIdOption);
        (ModelKey key, string version) = result.GetValue(KeyOption) is { } keyPath
            ? (Keys.Load(keyPath), result.GetRequiredValue(ModelVersionOption))
            : await NewVersionOnServerAsync(result, modelId, cancellationToken).ConfigureAwait(false);
        using ModelKey disposeKey = key;

        if (await IsSealedModelAsync(source, cancellationToken).ConfigureAwait(false))
        {
            Context.WriteWarning($"{ErrorReporter.Quote(input)} is already a sealed model; sealing it again.");
        }

        source.Position = 0;
        cancellationToken.ThrowIfCancellationRequested();
        var options = new SealOptions
        {
            ModelId = modelId,
            ModelVersion = version,
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

    /// <summary>
    /// Asks the key server for a new version of <paramref name="modelId"/> (creating the model if needed, as the MSBuild
    /// task does); its data key comes back sealed (HPKE) to a publisher key pair that lives only in this process.
    /// </summary>
    private async Task<(ModelKey Key, string Version)> NewVersionOnServerAsync(ParseResult result, string modelId, CancellationToken cancellationToken)
    {
        using KeyServerAdminClient client = await ServerOptionsFactory.AdminClientAsync(result, ServerOption, AdminCredentialOption, cancellationToken).ConfigureAwait(false);
        (ModelKey key, string version) = await client.PublishVersionAsync(modelId, result.GetValue(ModelVersionOption), cancellationToken).ConfigureAwait(false);
        Context.Error.WriteLine($"created version {version} of {modelId} on {client.Server} (key {key.KeyId})");
        return (key, version);
    }

    private static async Task<bool> IsSealedModelAsync(Stream source, CancellationToken cancellationToken)
    {
        byte[] prefix = new byte[SealedModelHeader.Magic.Length];
        int read = await source.ReadAtLeastAsync(prefix, prefix.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        return read == prefix.Length && prefix.AsSpan().SequenceEqual(SealedModelHeader.Magic);
    }
}
