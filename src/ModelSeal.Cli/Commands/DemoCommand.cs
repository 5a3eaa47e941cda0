using System.CommandLine;
using System.Security.Cryptography;

namespace ModelSeal.Cli.Commands;

/// <summary>
/// <c>modelseal demo</c>: the whole container workflow on the sample model embedded in this program — key, seal,
/// inspect, verify, open (1 and N threads) and two rejected forgeries. Writes only to a temporary directory that it
/// deletes, and never writes the plaintext model to disk.
/// </summary>
internal sealed class DemoCommand : VerbCommand
{
    internal const string SampleResource = "ModelSeal.Cli.sample-model.onnx";
    private const string SampleName = "ch_ppocr_mobile_v2.0_cls_infer.onnx (PaddleOCR text-direction classifier, Apache-2.0)";

    private const string Summary = """
        Run the whole workflow on the bundled sample model: create a key, seal the model, inspect, verify and open
        the sealed file, and show that a tampered file and a wrong key are rejected. Leaves no files behind.
        """;

    public DemoCommand(CliContext context)
        : base("demo", Summary, context)
    {
    }

    protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
    {
        TextWriter o = Context.Out;
        DirectoryInfo work = Directory.CreateTempSubdirectory("modelseal-demo-");
        try
        {
            await using Stream model = typeof(DemoCommand).Assembly.GetManifestResourceStream(SampleResource)
                ?? throw new InvalidOperationException("The sample model is missing from this build.");
            string sampleHash = Convert.ToHexStringLower(await SHA256.HashDataAsync(model, cancellationToken).ConfigureAwait(false));
            model.Position = 0;
            o.WriteLine("ModelSeal demo: the sealed-model workflow on the bundled sample model");
            o.WriteLine($"  model    {SampleName}");
            o.WriteLine($"           {Text.Plural(model.Length, "byte")}, sha256 {sampleHash}");

            string keyPath = Path.Combine(work.FullName, "demo.key");
            using ModelKey key = ModelKey.Generate(Keys.NewKeyId());
            KeyFile.Write(keyPath, key);
            o.WriteLine($"  keygen   new random data key '{key.KeyId}' in an owner-only key file (its bytes are never printed)");

            string sealedPath = Path.Combine(work.FullName, "classifier.mseal");
            long start = Context.Time.GetTimestamp();
            SealedModelHeader header;
            await using (AtomicFile file = AtomicFile.Create(sealedPath, overwrite: false))
            {
                header = await SealedModel.SealAsync(model, file.Stream, key, new SealOptions { ModelId = "classifier", ModelVersion = "1" }, cancellationToken: cancellationToken).ConfigureAwait(false);
                await file.CommitAsync(cancellationToken).ConfigureAwait(false);
            }

            o.WriteLine($"  encrypt  {Text.Plural(new FileInfo(sealedPath).Length, "byte")} sealed file: header of {Text.Plural(header.Length, "byte")} + Cobblestone-256 payload in {Text.Plural(header.ChunkCount, "chunk")}, in {Text.Duration(Context.Since(start))}");

            await using (FileStream input = Files.OpenInput(sealedPath))
            {
                SealedModelHeader read = await SealedModelHeader.ReadAsync(input, cancellationToken).ConfigureAwait(false);
                o.WriteLine($"  inspect  without the key: {Text.Describe(read)}");
            }

            start = Context.Time.GetTimestamp();
            await using (FileStream input = Files.OpenInput(sealedPath))
            {
                await SealedModel.VerifyAsync(input, key, cancellationToken: cancellationToken).ConfigureAwait(false);
            }

            o.WriteLine($"  verify   every chunk authenticated in {Text.Duration(Context.Since(start))}, nothing written");

            foreach (int threads in new[] { 1, Environment.ProcessorCount })
            {
                start = Context.Time.GetTimestamp();
                await using FileStream input = Files.OpenInput(sealedPath);
                using DecryptedModel opened = await SealedModel.DecryptAsync(input, key, new DecryptOptions { MaxDegreeOfParallelism = threads }, cancellationToken: cancellationToken).ConfigureAwait(false);
                TimeSpan elapsed = Context.Since(start);
                bool same = Convert.ToHexStringLower(SHA256.HashData(opened.Span)) == sampleHash;
                o.WriteLine($"  open     {Text.Plural(threads, "thread")}: {Text.Plural(opened.Length, "byte")} ({opened.ContentType.ToName()}) into one pinned buffer in {Text.Duration(elapsed)}; sha256 {(same ? "matches the original" : "DIFFERS")}; zeroed on dispose");
                if (!same)
                {
                    throw new InvalidOperationException("The decrypted sample differs from the original.");
                }
            }

            byte[] tampered = await File.ReadAllBytesAsync(sealedPath, cancellationToken).ConfigureAwait(false);
            int flipAt = header.Length + (tampered.Length - header.Length) / 2;
            tampered[flipAt] ^= 0x01;
            o.WriteLine($"  tamper   one bit flipped at byte {Text.Count(flipAt)}: {await RejectionAsync(tampered, key, cancellationToken).ConfigureAwait(false)}");

            using ModelKey wrong = ModelKey.Generate(key.KeyId);
            o.WriteLine($"  wrong    another key with the same id: {await RejectionAsync(await File.ReadAllBytesAsync(sealedPath, cancellationToken).ConfigureAwait(false), wrong, cancellationToken).ConfigureAwait(false)}");
            o.WriteLine("demo passed: the key file and sealed model were in a temporary directory, now deleted; the plaintext never touched the disk.");
            return ExitCodes.Success;
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    private static async Task<string> RejectionAsync(byte[] sealedModel, ModelKey key, CancellationToken cancellationToken)
    {
        try
        {
            using DecryptedModel opened = await SealedModel.DecryptAsync(new MemoryStream(sealedModel), key, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (SealedModelAuthenticationException e)
        {
            return "rejected, nothing released: " + e.Message;
        }

        throw new InvalidOperationException("A forged sealed model was accepted.");
    }
}
