using System.CommandLine;
using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ModelSeal.Client;
using ModelSeal.Hpke;
using ModelSeal.OnnxRuntime;
using ModelSeal.Server;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;
using ModelSeal.Protocol;

namespace ModelSeal.Cli.Commands;

/// <summary>
/// <c>modelseal demo</c>: the whole system on the embedded default, with no setup. Starts the key server in-process on
/// 127.0.0.1 with a temporary data directory; as the publisher, registers the embedded sample model, has the server
/// create its data key and seals the model; creates a licence; then, as an app, fetches the key over HTTP (HPKE-sealed
/// to a device key), opens the sealed file in memory, creates an ONNX Runtime session, runs the classifier and checks
/// its outputs against the plaintext model's. Exit code 0 only if everything matched.
/// </summary>
internal sealed class DemoCommand : VerbCommand
{
    internal const string SampleResource = "ModelSeal.Cli.sample-model.onnx";
    private const string ModelId = "classifier";

    private const string Summary = """
        Run the whole system on the bundled sample model with no setup: an in-process key server on 127.0.0.1, a
        licence, a key fetched over HTTP and sealed to a device key, the sealed model opened in memory into ONNX
        Runtime, and its outputs checked against the plaintext model. Leaves no files behind.

        Examples:
          modelseal demo
        """;

    public DemoCommand(CliContext context)
        : base("demo", Summary, context)
    {
        Add(JsonOption);
    }

    public Option<bool> JsonOption { get; } = new("--json") { Description = "Print the outcome as one JSON object on standard output; the step-by-step report goes to standard error." };

    protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
    {
        bool json = result.GetValue(JsonOption);
        TextWriter o = json ? Context.Error : Context.Out;
        DirectoryInfo work = Directory.CreateTempSubdirectory("modelseal-demo-");
        try
        {
            byte[] plaintext = await ReadSampleAsync(cancellationToken).ConfigureAwait(false);
            o.WriteLine("ModelSeal demo: a sealed model served by a key server and run in ONNX Runtime");
            o.WriteLine($"  model      PaddleOCR text-direction classifier (Apache-2.0), {Text.Plural(plaintext.Length, "byte")}, embedded in this program");

            // The key server, in-process on 127.0.0.1 with a temporary data directory.
            var clock = Stopwatch.StartNew();
            var serverOptions = new ServerOptions { DataDirectory = Path.Combine(work.FullName, "server"), Urls = "http://127.0.0.1:0", AdminCredentialOut = Path.Combine(work.FullName, "admin.credential") };
            await using WebApplication server = ServerHost.Build(serverOptions, logging => logging.SetMinimumLevel(LogLevel.Error));
            await server.StartAsync(cancellationToken).ConfigureAwait(false);
            var url = new Uri(server.Urls.Single() + "/");
            o.WriteLine($"  server     key server at {url} (SQLite, master key, audit log in a temporary directory), up in {Ms(clock)}");

            // Publisher: the first version creates the model; the server makes its data key and seals it to a publisher key.
            clock.Restart();
            string sealedPath = Path.Combine(work.FullName, "classifier.mseal");
            string credentialPath = Path.Combine(work.FullName, "licence.credential");
            string licenceId;
            string modelVersion;
            using (KeyServerAdminClient admin = ServerOptionsFactory.NewClient(url))
            {
                await admin.LoginAdminAsync((await File.ReadAllTextAsync(serverOptions.AdminCredentialOut, cancellationToken).ConfigureAwait(false)).Trim(), cancellationToken).ConfigureAwait(false);
                (ModelKey dataKey, string version) = await admin.PublishVersionAsync(ModelId, null, cancellationToken).ConfigureAwait(false);
                using ModelKey _ = dataKey;
                modelVersion = version;
                await using (AtomicFile file = AtomicFile.Create(sealedPath, overwrite: false))
                {
                    await SealedModel.SealAsync(new MemoryStream(plaintext, writable: false), file.Stream, dataKey, new SealOptions { ModelId = ModelId, ModelVersion = version }, cancellationToken: cancellationToken).ConfigureAwait(false);
                    await file.CommitAsync(cancellationToken).ConfigureAwait(false);
                }

                LicenceCreatedResponse licence = await admin.CreateLicenceAsync(new CreateLicenceRequest("demo-app", [ModelId], null, Rfc3339.Format(DateTimeOffset.UtcNow.AddDays(30)), 1), cancellationToken).ConfigureAwait(false);
                licenceId = licence.LicenceId;
                await using AtomicFile credential = AtomicFile.Create(credentialPath, overwrite: false, ownerOnly: true);
                await credential.Stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(licence.Credential!), cancellationToken).ConfigureAwait(false);
                await credential.CommitAsync(cancellationToken).ConfigureAwait(false);
                o.WriteLine($"  publish    model {ModelId} v{version}, data key {dataKey.KeyId} created by the server and sealed to a publisher key; sealed file {Text.Plural(new FileInfo(sealedPath).Length, "byte")}; licence {licenceId} (1 device); {Ms(clock)}");
            }

            // The app: a key source from DI (licence credential → token → key release sealed to an in-memory device key).
            await using ServiceProvider app = new ServiceCollection()
                .AddLogging(logging => logging.SetMinimumLevel(LogLevel.Warning))
                .AddModelSeal(options =>
                {
                    options.ServerUrl = url.ToString();
                    options.LicenceId = licenceId;
                    options.CredentialFile = credentialPath;
                })
                .BuildServiceProvider();
            var keys = new TimedKeySource(app.GetRequiredService<IModelKeySource>());

            clock.Restart();
            using InferenceSession session = await SealedInferenceSession.CreateAsync(sealedPath, keys, cancellationToken: cancellationToken).ConfigureAwait(false);
            TimeSpan load = clock.Elapsed;
            o.WriteLine($"  key        fetched over HTTP in {Text.Duration(keys.Elapsed)}: token from the licence credential, key sealed with HPKE (P-256) to this run's device key, opened in memory");
            o.WriteLine($"  open       decrypted and authenticated into one pinned buffer, ONNX Runtime session created, buffer zeroed: {Text.Duration(load - keys.Elapsed)}");

            float[] input = DeterministicInput();
            using var reference = new InferenceSession(plaintext);
            clock.Restart();
            float[] sealedOutput = Run(session, input);
            TimeSpan inference = clock.Elapsed;
            float[] plainOutput = Run(reference, input);
            bool same = sealedOutput.AsSpan().SequenceEqual(plainOutput);
            o.WriteLine($"  inference  classifier on a fixed 1×3×48×192 input in {Text.Duration(inference)}: [{string.Join(", ", sealedOutput.Select(v => v.ToString("F6", System.Globalization.CultureInfo.InvariantCulture)))}] — {(same ? "identical to the plaintext model's outputs" : "DIFFERENT from the plaintext model's outputs")}");

            byte[] tampered = await File.ReadAllBytesAsync(sealedPath, cancellationToken).ConfigureAwait(false);
            tampered[tampered.Length / 2] ^= 0x01;
            string rejection = await RejectionAsync(tampered, keys, cancellationToken).ConfigureAwait(false);
            o.WriteLine($"  tamper     one bit flipped in the sealed file: {rejection}");
            o.WriteLine("  on disk    only the sealed file, the server's data directory and the licence credential (all in a temporary directory, now deleted); the model's plaintext never touched the disk");
            if (!same)
            {
                Context.WriteError("the sealed model's outputs differ from the plaintext model's.");
                return ExitCodes.Failure;
            }

            await server.StopAsync(CancellationToken.None).ConfigureAwait(false);
            o.WriteLine("demo passed.");
            if (json)
            {
                CliJsonContext.Write(Context, new DemoResult(
                    Passed: true, ModelId, modelVersion, licenceId, (long)keys.Elapsed.TotalMilliseconds, (long)(load - keys.Elapsed).TotalMilliseconds,
                    (long)inference.TotalMilliseconds, OutputsMatch: same, TamperRejected: true));
            }

            return ExitCodes.Success;
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    private static string Ms(Stopwatch clock) => Text.Duration(clock.Elapsed);

    internal static async Task<byte[]> ReadSampleAsync(CancellationToken cancellationToken)
    {
        await using Stream model = typeof(DemoCommand).Assembly.GetManifestResourceStream(SampleResource)
            ?? throw new InvalidOperationException("The sample model is missing from this build.");
        byte[] bytes = new byte[model.Length];
        await model.ReadExactlyAsync(bytes, cancellationToken).ConfigureAwait(false);
        return bytes;
    }

    private static float[] DeterministicInput()
    {
        var random = new Random(20261123);
        return [.. Enumerable.Range(0, 3 * 48 * 192).Select(_ => (float)random.NextDouble())];
    }

    private static float[] Run(InferenceSession session, float[] input)
    {
        var tensor = new DenseTensor<float>(input, [1, 3, 48, 192]);
        using IDisposableReadOnlyCollection<DisposableNamedOnnxValue> outputs = session.Run([NamedOnnxValue.CreateFromTensor(session.InputMetadata.Keys.Single(), tensor)]);
        return [.. outputs[0].AsEnumerable<float>()];
    }

    private static async Task<string> RejectionAsync(byte[] sealedModel, IModelKeySource keys, CancellationToken cancellationToken)
    {
        try
        {
            using InferenceSession session = await SealedInferenceSession.CreateAsync(new MemoryStream(sealedModel), keys, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (SealedModelAuthenticationException e)
        {
            return "rejected before anything reached ONNX Runtime: " + e.Message;
        }

        throw new InvalidOperationException("A tampered sealed model was accepted.");
    }

    /// <summary>Measures the time spent getting keys.</summary>
    private sealed class TimedKeySource(IModelKeySource inner) : IModelKeySource
    {
        public TimeSpan Elapsed { get; private set; }

        public async ValueTask<ModelKey> GetKeyAsync(SealedModelHeader header, CancellationToken cancellationToken = default)
        {
            var clock = Stopwatch.StartNew();
            ModelKey key = await inner.GetKeyAsync(header, cancellationToken).ConfigureAwait(false);
            Elapsed = clock.Elapsed;
            return key;
        }
    }
}
