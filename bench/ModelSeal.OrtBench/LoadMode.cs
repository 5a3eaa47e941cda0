namespace ModelSeal.OrtBench;

/// <summary>How a child process loads the model. The names are the command-line names (<c>--child NAME …</c>).</summary>
internal sealed record LoadMode(string Name, string Description, bool Main, bool ForOnnx, bool ForOrt)
{
    /// <summary>(1) <c>new InferenceSession(path, options)</c>: the reference.</summary>
    public static readonly LoadMode Path = new("path", "plaintext from path: `new InferenceSession(path, options)`", Main: true, ForOnnx: true, ForOrt: true);

    /// <summary>(2) <c>File.ReadAllBytes</c>, then <c>new InferenceSession(bytes, options)</c>.</summary>
    public static readonly LoadMode Bytes = new("bytes", "plaintext from bytes: `File.ReadAllBytes`, then `new InferenceSession(bytes, options)`", Main: true, ForOnnx: true, ForOrt: true);

    /// <summary>(3) <c>SealedInferenceSession.CreateAsync(path, KeyFileSource, options)</c>: copy mode.</summary>
    public static readonly LoadMode Sealed = new("sealed", "sealed, copy mode: `SealedInferenceSession.CreateAsync(sealedPath, new KeyFileSource(keyFile), options)`", Main: true, ForOnnx: true, ForOrt: false);

    /// <summary>(4) <c>SealedInferenceSession.CreateZeroCopyAsync(path, KeyFileSource, options)</c>: .ort only.</summary>
    public static readonly LoadMode SealedZeroCopy = new("sealed-zc", "sealed, zero-copy: `SealedInferenceSession.CreateZeroCopyAsync(sealedPath, new KeyFileSource(keyFile), options)` (.ort only)", Main: true, ForOnnx: false, ForOrt: true);

    /// <summary>Diagnostic: copy mode by hand, timing decryption and session creation separately.</summary>
    public static readonly LoadMode SealedSplit = new("sealed-split", "diagnostic: what `sealed` does, by hand and timed in two phases: `KeyFile.Read` + `SealedModel.DecryptAsync(file)` (N threads), then `new InferenceSession(buffer, options)`", Main: false, ForOnnx: true, ForOrt: false);

    /// <summary>Diagnostic: as <see cref="SealedSplit"/> with one decryption thread (no worker tasks, no ring of buffers).</summary>
    public static readonly LoadMode SealedSplit1 = new("sealed-split-1t", "diagnostic: `sealed-split` with `MaxDegreeOfParallelism = 1` (one reused batch buffer, no worker tasks)", Main: false, ForOnnx: true, ForOrt: false);

    /// <summary>Diagnostic: copy mode after a warm-up decryption of a small sealed file (JIT, OpenSSL, thread pool warm).</summary>
    public static readonly LoadMode SealedWarm = new("sealed-warm", "`sealed` after `SealedModel.WarmUpAsync()` (what an app calls at start-up), before the measurement starts: OpenSSL loaded, decrypt path JIT-compiled, thread pool started", Main: false, ForOnnx: true, ForOrt: false);

    /// <summary>Diagnostic: copy mode after one AES-GCM and one HKDF-SHA512 operation (OpenSSL loaded and initialised).</summary>
    public static readonly LoadMode SealedCryptoWarm = new("sealed-warm-crypto", "diagnostic: `sealed` after one `AesGcm` encryption and one `HKDF.Expand` (SHA-512) before the measurement starts (OpenSSL loaded and initialised, nothing of ModelSeal compiled)", Main: false, ForOnnx: true, ForOrt: false);

    /// <summary>Diagnostic: <see cref="Path"/> a second time in the same process (the first load untimed and disposed).</summary>
    public static readonly LoadMode PathSecond = new("path-2nd", "diagnostic: `path` again in the same process, after one untimed `path` load of the same model (steady state)", Main: false, ForOnnx: true, ForOrt: false);

    /// <summary>Diagnostic: <see cref="Bytes"/> a second time in the same process (the first load untimed and disposed).</summary>
    public static readonly LoadMode BytesSecond = new("bytes-2nd", "diagnostic: `bytes` again in the same process, after one untimed `bytes` load of the same model (steady state)", Main: false, ForOnnx: true, ForOrt: false);

    /// <summary>Diagnostic: <see cref="Sealed"/> a second time in the same process (the first load untimed and disposed).</summary>
    public static readonly LoadMode SealedSecond = new("sealed-2nd", "diagnostic: `sealed` again in the same process, after one untimed `sealed` load of the same model (steady state)", Main: false, ForOnnx: true, ForOrt: false);

    public static IReadOnlyList<LoadMode> All { get; } = [Path, Bytes, Sealed, SealedZeroCopy, SealedSplit, SealedSplit1, SealedCryptoWarm, SealedWarm, PathSecond, BytesSecond, SealedSecond];

    public static LoadMode Parse(string name) =>
        All.FirstOrDefault(m => m.Name == name) ?? throw new ArgumentException($"Unknown mode '{name}'; known: {string.Join(", ", All.Select(m => m.Name))}.", nameof(name));

    public bool AppliesTo(bool isOrt) => isOrt ? ForOrt : ForOnnx;
}
