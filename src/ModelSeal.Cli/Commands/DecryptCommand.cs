using System.CommandLine;
using System.Security.Cryptography;

namespace ModelSeal.Cli.Commands;

/// <summary><c>modelseal decrypt INPUT --key FILE --out OUTPUT [--force] [--json]</c>.</summary>
internal sealed class DecryptCommand : VerbCommand
{
    private const string Summary = """
        Open a sealed model into a plaintext file (owner-only). The file appears only once every chunk is
        authenticated; until then the plaintext has no name on disk (Linux: an O_TMPFILE file), or is a hidden
        temporary file beside it, deleted on any failure or interruption. --force replaces an existing file
        atomically (the complete file is renamed over it).

        The plaintext goes to the --out file only, never to standard output.

        Examples:
          modelseal decrypt model.mseal --key dev.key --out model.onnx
        """;

    public DecryptCommand(CliContext context)
        : base("decrypt", Summary, context)
    {
        Add(InputArgument);
        Add(KeyOption);
        Add(OutOption);
        Add(ForceOption);
        Add(JsonOption);
    }

    public Argument<string> InputArgument { get; } = VerbOptions.Input("The sealed model to open.");

    public Option<string> KeyOption { get; } = VerbOptions.Key();

    public Option<string> OutOption { get; } = VerbOptions.Out("The plaintext model file to write (created owner-only).");

    public Option<bool> ForceOption { get; } = VerbOptions.Force();

    public Option<bool> JsonOption { get; } = VerbOptions.Json();

    protected override string? GetInputPath(ParseResult result) => result.GetValue(InputArgument);

    protected override string? GetOutputPath(ParseResult result) => result.GetValue(OutOption);

    protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
    {
        string input = result.GetRequiredValue(InputArgument);
        string output = result.GetRequiredValue(OutOption);
        string keyPath = result.GetRequiredValue(KeyOption);
        bool force = result.GetValue(ForceOption);
        Files.RequireInputFile(input);
        Files.CheckOutput(output, force, ("the input file", input), ("the key file", keyPath));
        using ModelKey key = Keys.Load(keyPath);

        long start = Context.Time.GetTimestamp();
        await using Stream source = Files.OpenInput(Context, input);
        SealedModelHeader header = await SealedModelHeader.ReadAsync(source, cancellationToken).ConfigureAwait(false);
        Files.RequireDeclaredLength(source, header, input);
        Keys.RequireKeyFor(header, key, input, keyPath);
        Stream sealedModel = Files.FromTheStart(source, header);
        cancellationToken.ThrowIfCancellationRequested();
        if (sealedModel is FileStream { CanSeek: true } file && !Context.StreamingDecrypt)
        {
            await DecryptInParallelAsync(file, key, header, output, force, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await DecryptStreamingAsync(sealedModel, key, header, input, output, force, cancellationToken).ConfigureAwait(false);
        }

        TimeSpan elapsed = Context.Since(start);
        if (result.GetValue(JsonOption))
        {
            CliJsonContext.Write(Context, new DecryptResult(
                input, output, header.ModelId, header.ModelVersion, header.KeyId, header.ContentType.ToName(), header.PlaintextLength,
                header.ChunkCount, header.SealedAt, (long)elapsed.TotalMilliseconds));
        }
        else
        {
            Context.Out.WriteLine($"decrypted {input} → {output}: {Text.Describe(header)}, every chunk authenticated, in {Text.Duration(elapsed)}");
        }

        return ExitCodes.Success;
    }

    // Every thread reads its chunks from the sealed file and writes them, once authenticated, to their place in the
    // owner-only output file (AtomicFile), which is put in place only when every chunk verified and discarded otherwise.
    private async Task DecryptInParallelAsync(FileStream source, ModelKey key, SealedModelHeader header, string output, bool force, CancellationToken cancellationToken)
    {
        await using AtomicFile file = AtomicFile.Create(output, force, ownerOnly: true);
        using (ProgressBar? progress = ProgressBar.Create(Context, "decrypting", header.PlaintextLength))
        {
            await SealedModel.DecryptToFileAsync(source, file.Stream, key, options: null, progress, cancellationToken).ConfigureAwait(false);
        }

        await file.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    // A sealed model read from a pipe: streamed on one thread into the owner-only output file (AtomicFile), put in place only
    // once the stream has ended cleanly (every chunk verified, nothing after the final one) and discarded otherwise.
    private async Task DecryptStreamingAsync(Stream source, ModelKey key, SealedModelHeader header, string input, string output, bool force, CancellationToken cancellationToken)
    {
        await using AtomicFile file = AtomicFile.Create(output, force, ownerOnly: true);
        await using SealedModelStream plaintext = await SealedModel.OpenReadAsync(source, key, leaveOpen: true, cancellationToken).ConfigureAwait(false);
        using ProgressBar? progress = ProgressBar.Create(Context, "decrypting", header.PlaintextLength);
        byte[] buffer = GC.AllocateArray<byte>(1024 * 1024, pinned: true);
        try
        {
            long done = 0;
            int read;
            while ((read = await plaintext.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                await file.Stream.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                done += read;
                progress?.Report(new ModelSealProgress(done, header.PlaintextLength));
            }

            if (done != header.PlaintextLength)
            {
                // Cannot happen with a conforming SealedModelStream; refuse rather than commit a short file.
                throw new CliException(
                    ExitCodes.AuthenticationFailed,
                    $"{ErrorReporter.Quote(input)} could not be authenticated: it ended after {done} of {header.PlaintextLength} bytes. Nothing was written.",
                    ErrorReporter.AuthenticationHint);
            }

            await file.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer);
        }
    }
}
