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
/// its outputs against the plaintext model's. Exit code 0 only if everything matched. With <c>--sign-in</c>, the sign-in
/// path instead (<see cref="SignInDemo"/>); the plain demo never looks for Node.js.
/// </summary>
internal sealed class DemoCommand : VerbCommand
{
    internal const string SampleResource = "ModelSeal.Cli.sample-model.onnx";
    internal const string ModelId = "classifier";

    private const string Summary = """
        Run the whole system on the bundled sample model with no setup: an in-process key server on 127.0.0.1, a
        licence, a key fetched over HTTP and sealed to a device key, the sealed model opened in memory into ONNX
        Runtime, and its outputs checked against the plaintext model. Leaves no files behind.

        With --sign-in, the path of an app that signs its users in: a real OpenID Connect provider (oidc-provider under
        Node.js 20 or later, installed with npm ci into a per-user cache on the first run) signs a user in, the key
        server trusts it by discovery and releases the key under an entitlement rule, and the app holds no credential
        file at all.

        Examples:
          modelseal demo
          modelseal demo --sign-in
        """;

    public DemoCommand(CliContext context)
        : base("demo", Summary, context)
    {
        Add(SignInOption);
        Add(JsonOption);
    }

    public Option<bool> SignInOption { get; } = new("--sign-in") { Description = "Show the sign-in path instead: a user signs in at a real OpenID Connect provider (needs Node.js 20+ and npm) and gets the key under an entitlement rule, with no credential file." };

    public Option<bool> JsonOption { get; } = new("--json") { Description = "Print the outcome as one JSON object on standard output; the step-by-step report goes to standard error." };

    protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
    {
        bool json = result.GetValue(JsonOption);
        if (result.GetValue(SignInOption))
        {
            return await SignInDemo.RunAsync(Context, json, Environment.GetEnvironmentVariable("PATH"), cancellationToken).ConfigureAwait(false);
        }

        TextWriter o = json ? Context.Error : Context.Out;
        DirectoryInfo work = Directory.CreateTempSubdirectory("modelseal-demo-");
        try
        {
            byte[] plaintext = await ReadSampleAsync(cancellationToken).ConfigureAwait(false);
            o.WriteLine("ModelSeal demo: a sealed model served by a key server and run in ONNX Runtime");
            WriteModelLine(o, plaintext);

            // The key server, in-process on 127.0.0.1 with a temporary data directory.
            var clock = Stopwatch.StartNew();
            var serverOptions = new ServerOptions { DataDirectory = Path.Combine(work.FullName, "server"), Urls = "http://127.0.0.1:0", AdminCredentialOut = Path.Combine(work.FullName, "admin.credential") };
            await using WebApplication server = ServerHost.Build(serverOptions, logging => logging.SetMinimumLevel(LogLevel.Error));
            Uri url = await StartAsync(server, cancellationToken).ConfigureAwait(false);
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
                (string version, string keyId) = await PublishAsync(admin, plaintext, sealedPath, cancellationToken).ConfigureAwait(false);
                modelVersion = version;

                LicenceCreatedResponse licence = await admin.CreateLicenceAsync(new CreateLicenceRequest("demo-app", [ModelId], null, Rfc3339.Format(DateTimeOffset.UtcNow.AddDays(30)), 1), cancellationToken).ConfigureAwait(false);
                licenceId = licence.LicenceId;
                await using AtomicFile credential = AtomicFile.Create(credentialPath, overwrite: false, ownerOnly: true);
                await credential.Stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(licence.Credential!), cancellationToken).ConfigureAwait(false);
                await credential.CommitAsync(cancellationToken).ConfigureAwait(false);
                o.WriteLine($"  publish    model {ModelId} v{version}, data key {keyId} created by the server and sealed to a publisher key; sealed file {Text.Plural(new FileInfo(sealedPath).Length, "byte")}; licence {licenceId} (1 device); {Ms(clock)}");
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
            DemoRun run = await OpenAndRunAsync(
                o,
                sealedPath,
                app.GetRequiredService<IModelKeySource>(),
                plaintext,
                key => $"fetched over HTTP in {Text.Duration(key)}: token from the licence credential, key sealed with HPKE (P-256) to this run's device key, opened in memory",
                cancellationToken).ConfigureAwait(false);
            o.WriteLine("  on disk    only the sealed file, the server's data directory and the licence credential (all in a temporary directory, now deleted); the model's plaintext never touched the disk");
            if (!run.OutputsMatch)
            {
                Context.WriteError("the sealed model's outputs differ from the plaintext model's.");
                return ExitCodes.Failure;
            }

            await server.StopAsync(CancellationToken.None).ConfigureAwait(false);
            o.WriteLine("demo passed.");
            if (json)
            {
                CliJsonContext.Write(Context, new DemoResult(
                    Passed: true, ModelId, modelVersion, licenceId, (long)run.Key.TotalMilliseconds, (long)run.Open.TotalMilliseconds,
                    (long)run.Inference.TotalMilliseconds, OutputsMatch: true, TamperRejected: true));
            }

            return ExitCodes.Success;
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    internal static string Ms(Stopwatch clock) => Text.Duration(clock.Elapsed);

    /// <summary>Starts the in-process key server and returns its URL (with a trailing slash).</summary>
    internal static async Task<Uri> StartAsync(WebApplication server, CancellationToken cancellationToken)
    {
        await server.StartAsync(cancellationToken).ConfigureAwait(false);
        return new Uri(server.Urls.Single() + "/");
    }

    /// <summary>The demo's first step: the sample model.</summary>
    internal static void WriteModelLine(TextWriter o, byte[] plaintext) =>
        o.WriteLine($"  model      PaddleOCR text-direction classifier (Apache-2.0), {Text.Plural(plaintext.Length, "byte")}, embedded in this program");

    /// <summary>
    /// The publisher's step: the first version of the model (the server creates its data key and returns it sealed to a
    /// publisher key), and <paramref name="plaintext"/> sealed with it to <paramref name="sealedPath"/>.
    /// </summary>
    internal static async Task<(string Version, string KeyId)> PublishAsync(KeyServerAdminClient admin, byte[] plaintext, string sealedPath, CancellationToken cancellationToken)
    {
        (ModelKey dataKey, string version) = await admin.PublishVersionAsync(ModelId, null, cancellationToken).ConfigureAwait(false);
        using ModelKey _ = dataKey;
        await using (AtomicFile file = AtomicFile.Create(sealedPath, overwrite: false))
        {
            await SealedModel.SealAsync(new MemoryStream(plaintext, writable: false), file.Stream, dataKey, new SealOptions { ModelId = ModelId, ModelVersion = version }, cancellationToken: cancellationToken).ConfigureAwait(false);
            await file.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        return (version, dataKey.KeyId);
    }

    /// <summary>
    /// The app's steps: the key from <paramref name="keySource"/> (<paramref name="keyStep"/> says how, given the time it
    /// took), the sealed model opened into ONNX Runtime, its outputs compared with the plaintext model's, and a tampered
    /// copy refused. Prints the steps key, open, inference and tamper.
    /// </summary>
    internal static async Task<DemoRun> OpenAndRunAsync(TextWriter o, string sealedPath, IModelKeySource keySource, byte[] plaintext, Func<TimeSpan, string> keyStep, CancellationToken cancellationToken)
    {
        var keys = new TimedKeySource(keySource);
        var clock = Stopwatch.StartNew();
        using InferenceSession session = await SealedInferenceSession.CreateAsync(sealedPath, keys, cancellationToken: cancellationToken).ConfigureAwait(false);
        TimeSpan load = clock.Elapsed;
        o.WriteLine($"  key        {keyStep(keys.Elapsed)}");
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
        return new DemoRun(same, keys.Elapsed, load - keys.Elapsed, inference);
    }

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

    /// <summary>What the app's steps measured, and whether the sealed model's outputs matched the plaintext model's.</summary>
    internal sealed record DemoRun(bool OutputsMatch, TimeSpan Key, TimeSpan Open, TimeSpan Inference);

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
