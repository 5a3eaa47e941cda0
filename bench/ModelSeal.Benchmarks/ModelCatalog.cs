namespace ModelSeal.Benchmarks;

/// <summary>The models the benchmarks decrypt.</summary>
public enum ModelSize
{
    /// <summary>samples/models/ch_ppocr_mobile_v2.0_cls_infer.onnx (578,966 bytes).</summary>
    Cls_579KB,

    /// <summary>tests/models/ch_PP-OCRv4_det_infer.onnx (4,745,517 bytes).</summary>
    Det_4_7MB,

    /// <summary>64 MiB of seeded pseudo-random bytes (67,108,864 bytes).</summary>
    Random_64MiB,
}

/// <summary>
/// Finds and seals the benchmark models. The repository root is the folder holding ModelSeal.slnx above
/// <see cref="AppContext.BaseDirectory"/>, which also holds for BenchmarkDotNet's generated child projects (they are
/// built under this project's bin folder).
/// </summary>
internal static class ModelCatalog
{
    private const int SyntheticLength = 64 * 1024 * 1024;
    private const int SyntheticSeed = 20_251_123;

    private static readonly Lazy<string> Root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ModelSeal.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Cannot find the repository root (the folder holding ModelSeal.slnx) above " + AppContext.BaseDirectory);
    });

    /// <summary>Length of the model (plaintext) in bytes, without loading it: used by the throughput column.</summary>
    public static long PlaintextLength(ModelSize size) => size switch
    {
        ModelSize.Random_64MiB => SyntheticLength,
        _ => new FileInfo(PathOf(size)).Length,
    };

    /// <summary>The model bytes.</summary>
    public static byte[] Load(ModelSize size)
    {
        if (size == ModelSize.Random_64MiB)
        {
            byte[] bytes = new byte[SyntheticLength];
            new Random(SyntheticSeed).NextBytes(bytes);
            return bytes;
        }

        return File.ReadAllBytes(PathOf(size));
    }

    /// <summary>Seals <paramref name="model"/> in memory and checks that it decrypts back to the same bytes.</summary>
    public static byte[] Seal(byte[] model, ModelKey key, ModelSize size)
    {
        using var plaintext = new MemoryStream(model, writable: false);
        using var sealedStream = new MemoryStream();
        var options = new SealOptions { ModelId = "bench-" + size.ToString().ToLowerInvariant().Replace('_', '-'), ModelVersion = "1", SealedAt = null };
        SealedModel.SealAsync(plaintext, sealedStream, key, options).GetAwaiter().GetResult();
        byte[] sealedBytes = sealedStream.ToArray();

        using var check = new MemoryStream(sealedBytes, writable: false);
        using DecryptedModel decrypted = SealedModel.DecryptAsync(check, key).GetAwaiter().GetResult();
        return decrypted.Span.SequenceEqual(model)
            ? sealedBytes
            : throw new InvalidOperationException($"The sealed {size} model did not decrypt back to its plaintext.");
    }

    private static string PathOf(ModelSize size) => size switch
    {
        ModelSize.Cls_579KB => Path.Combine(Root.Value, "samples", "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx"),
        ModelSize.Det_4_7MB => Path.Combine(Root.Value, "tests", "models", "ch_PP-OCRv4_det_infer.onnx"),
        _ => throw new ArgumentOutOfRangeException(nameof(size), size, "This model is synthetic: it has no file."),
    };
}
