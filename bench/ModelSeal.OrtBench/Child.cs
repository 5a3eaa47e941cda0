using System.Diagnostics;
using System.Globalization;
using System.Runtime;
using System.Runtime.CompilerServices;
using Microsoft.ML.OnnxRuntime;
using ModelSeal.OnnxRuntime;

namespace ModelSeal.OrtBench;

/// <summary>
/// One measurement in a fresh process: ONNX Runtime's environment is created first (native library loaded), then the
/// peak RSS is reset, then one model is loaded in one mode under a stopwatch. Prints one <c>RESULT</c> line.
/// </summary>
internal static class Child
{
    public const string ResultPrefix = "RESULT ";

    /// <summary>Arguments: mode, plaintext model path, sealed model path, key file path.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length != 4)
        {
            await Console.Error.WriteLineAsync("usage: --child MODE MODEL SEALED KEYFILE");
            return 2;
        }

        LoadMode mode = LoadMode.Parse(args[0]);
        string modelPath = args[1];
        string sealedPath = args[2];
        string keyPath = args[3];
        bool isOrt = modelPath.EndsWith(".ort", StringComparison.OrdinalIgnoreCase);

        // Common to every mode and outside the measurement: the ORT native library and its environment.
        _ = OrtEnv.Instance();
        using SessionOptions options = CreateOptions(isOrt, mode);

        var phases = new List<(string Name, double Ms)>();
        var memory = new List<(string Name, long KiB)>();
        if (mode == LoadMode.SealedWarm || mode == LoadMode.SealedCryptoWarm)
        {
            ProcessStatus w = ProcessStatus.Read();
            long w0 = Stopwatch.GetTimestamp();
            if (mode == LoadMode.SealedWarm)
            {
                await SealedModel.WarmUpAsync(); // what an app calls at start-up
            }
            else
            {
                WarmUpCrypto();
            }

            phases.Add(("warmup", Stopwatch.GetElapsedTime(w0).TotalMilliseconds));
            memory.Add(("warmup", ProcessStatus.Read().RssKiB - w.RssKiB));
        }

        if (mode == LoadMode.PathSecond || mode == LoadMode.BytesSecond || mode == LoadMode.SealedSecond)
        {
            LoadMode first = mode == LoadMode.PathSecond ? LoadMode.Path : mode == LoadMode.BytesSecond ? LoadMode.Bytes : LoadMode.Sealed;
            long w0 = Stopwatch.GetTimestamp();
            (await LoadAsync(first, modelPath, sealedPath, keyPath, options, [], [], 0)).Dispose();
            phases.Add(("first-load", Stopwatch.GetElapsedTime(w0).TotalMilliseconds));
        }

        bool peakReset = ProcessStatus.TryResetPeak();
        ProcessStatus before = ProcessStatus.Read();
        TimeSpan jitBefore = JitInfo.GetCompilationTime();
        long methodsBefore = JitInfo.GetCompiledMethodCount();
        long start = Stopwatch.GetTimestamp();

        IDisposable session = await LoadAsync(mode, modelPath, sealedPath, keyPath, options, phases, memory, before.RssKiB);

        TimeSpan elapsed = Stopwatch.GetElapsedTime(start);
        TimeSpan jit = JitInfo.GetCompilationTime() - jitBefore;
        long methods = JitInfo.GetCompiledMethodCount() - methodsBefore;
        ProcessStatus after = ProcessStatus.Read();
        int inputs = session switch
        {
            InferenceSession s => s.InputMetadata.Count,
            SealedOrtSession s => s.Session.InputMetadata.Count,
            _ => 0,
        };
        session.Dispose();
        if (inputs == 0)
        {
            await Console.Error.WriteLineAsync("the session has no inputs: the model did not load");
            return 1;
        }

        var line = new System.Text.StringBuilder(ResultPrefix);
        line.Append(CultureInfo.InvariantCulture, $"totalMs={elapsed.TotalMilliseconds:F3} rssBeforeKiB={before.RssKiB} peakKiB={after.PeakRssKiB} rssAfterKiB={after.RssKiB} ");
        line.Append(CultureInfo.InvariantCulture, $"threadsBefore={before.Threads} threadsAfter={after.Threads} jitMs={jit.TotalMilliseconds:F3} jitMethods={methods} peakReset={peakReset}");
        foreach ((string name, double ms) in phases)
        {
            line.Append(CultureInfo.InvariantCulture, $" phase.{name}={ms:F3}");
        }

        foreach ((string name, long kib) in memory)
        {
            line.Append(CultureInfo.InvariantCulture, $" rss.{name}={kib}");
        }

        Console.WriteLine(line.ToString());
        return 0;
    }

    /// <summary>
    /// The same options for every mode: ONNX Runtime's defaults. For .ort models the plaintext references get the
    /// zero-copy entries too (what <see cref="SealedInferenceSession.CreateZeroCopyAsync(string, IModelKeySource, SessionOptions?, IProgress{ModelSealProgress}?, CancellationToken)"/>
    /// adds to the options it is given), so the comparison differs only in where the bytes come from.
    /// </summary>
    private static SessionOptions CreateOptions(bool isOrt, LoadMode mode)
    {
        var options = new SessionOptions();
        if (isOrt && mode != LoadMode.SealedZeroCopy)
        {
            foreach (KeyValuePair<string, string> entry in SealedInferenceSession.ZeroCopyConfigEntries)
            {
                options.AddSessionConfigEntry(entry.Key, entry.Value);
            }
        }

        return options;
    }

    private static async Task<IDisposable> LoadAsync(LoadMode mode, string modelPath, string sealedPath, string keyPath, SessionOptions options, List<(string Name, double Ms)> phases, List<(string Name, long KiB)> memory, long rssBefore)
    {
        if (mode == LoadMode.Path || mode == LoadMode.PathSecond)
        {
            return new InferenceSession(modelPath, options);
        }

        if (mode == LoadMode.Bytes || mode == LoadMode.BytesSecond)
        {
            return LoadBytes(modelPath, options, phases);
        }

        if (mode == LoadMode.Sealed || mode == LoadMode.SealedWarm || mode == LoadMode.SealedCryptoWarm || mode == LoadMode.SealedSecond)
        {
            return await SealedInferenceSession.CreateAsync(sealedPath, new KeyFileSource(keyPath), options);
        }

        if (mode == LoadMode.SealedZeroCopy)
        {
            return await SealedInferenceSession.CreateZeroCopyAsync(sealedPath, new KeyFileSource(keyPath), options);
        }

        int threads = mode == LoadMode.SealedSplit1 ? 1 : Environment.ProcessorCount;
        return await LoadSplitAsync(sealedPath, keyPath, options, threads, phases, memory, rssBefore);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static InferenceSession LoadBytes(string modelPath, SessionOptions options, List<(string Name, double Ms)> phases)
    {
        long t0 = Stopwatch.GetTimestamp();
        byte[] bytes = File.ReadAllBytes(modelPath);
        phases.Add(("read", Stopwatch.GetElapsedTime(t0).TotalMilliseconds));
        long t1 = Stopwatch.GetTimestamp();
        var session = new InferenceSession(bytes, options);
        phases.Add(("session", Stopwatch.GetElapsedTime(t1).TotalMilliseconds));
        return session;
    }

    /// <summary>What copy mode does, by hand: key file, decrypt from the file (same FileStream flags), session, zero.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static async Task<InferenceSession> LoadSplitAsync(string sealedPath, string keyPath, SessionOptions options, int threads, List<(string Name, double Ms)> phases, List<(string Name, long KiB)> memory, long rssBefore)
    {
        long t0 = Stopwatch.GetTimestamp();
        using ModelKey key = KeyFile.Read(keyPath);
        phases.Add(("key", Stopwatch.GetElapsedTime(t0).TotalMilliseconds));
        long t1 = Stopwatch.GetTimestamp();
        await using var file = new FileStream(sealedPath, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.Asynchronous | FileOptions.SequentialScan);
        using DecryptedModel model = await SealedModel.DecryptAsync(file, key, new DecryptOptions { MaxDegreeOfParallelism = threads });
        phases.Add(("decrypt", Stopwatch.GetElapsedTime(t1).TotalMilliseconds));
        memory.Add(("decrypted", ProcessStatus.Read().RssKiB - rssBefore));
        long t2 = Stopwatch.GetTimestamp();
        var session = new InferenceSession(model.DangerousGetArray(), options);
        phases.Add(("session", Stopwatch.GetElapsedTime(t2).TotalMilliseconds));
        long t3 = Stopwatch.GetTimestamp();
        model.Dispose();
        phases.Add(("zero", Stopwatch.GetElapsedTime(t3).TotalMilliseconds));
        return session;
    }

    /// <summary>One AES-256-GCM encryption and one HKDF-SHA512 expansion: loads and initialises OpenSSL, nothing else.</summary>
    private static void WarmUpCrypto()
    {
        byte[] key = new byte[32];
        byte[] block = new byte[16];
        using var aead = new System.Security.Cryptography.AesGcm(key, 16);
        aead.Encrypt(new byte[12], block, block, new byte[16]);
        byte[] okm = new byte[76];
        System.Security.Cryptography.HKDF.Expand(System.Security.Cryptography.HashAlgorithmName.SHA512, new byte[64], okm, block);
    }

}
