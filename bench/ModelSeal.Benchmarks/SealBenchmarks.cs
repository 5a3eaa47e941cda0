using BenchmarkDotNet.Attributes;

namespace ModelSeal.Benchmarks;

/// <summary>
/// Sealing (encryption) throughput: <see cref="SealedModel.SealAsync"/> from a model held in memory (a MemoryStream over
/// the plaintext loaded once in <see cref="GlobalSetup"/>) into a sink, so neither disk nor page cache is measured.
/// One thread (sealing is sequential), content type detected from the bytes, no sealing time recorded.
/// </summary>
[Config(typeof(BenchmarkConfig))]
public class SealBenchmarks : IDisposable
{
    private ModelKey? _key;
    private byte[] _model = [];
    private MemoryStream? _destination;
    private SealOptions _options = new() { ModelId = "bench", ModelVersion = "1", SealedAt = null };

    [Params(ModelSize.Cls_579KB, ModelSize.Det_4_7MB, ModelSize.Random_64MiB)]
    public ModelSize ModelSize { get; set; }

    private ModelKey Key => _key ?? throw new InvalidOperationException("GlobalSetup has not run.");

    [GlobalSetup]
    public void GlobalSetup()
    {
        _key = ModelKey.Generate("bench-key");
        _model = ModelCatalog.Load(ModelSize);
        byte[] sealedBytes = ModelCatalog.Seal(_model, _key, ModelSize); // checks that sealing round-trips
        _destination = new MemoryStream(sealedBytes.Length);
        _options = new SealOptions { ModelId = "bench-" + ModelSize.ToString().ToLowerInvariant().Replace('_', '-'), ModelVersion = "1", SealedAt = null };
    }

    [GlobalCleanup]
    public void GlobalCleanup() => Dispose();

    /// <summary>SealAsync into <see cref="Stream.Null"/>: encryption only, nothing kept.</summary>
    [Benchmark(Baseline = true)]
    public async Task<long> Seal_to_null()
    {
        using var source = new MemoryStream(_model, writable: false);
        SealedModelHeader header = await SealedModel.SealAsync(source, Stream.Null, Key, _options);
        return header.PayloadLength;
    }

    /// <summary>SealAsync into a MemoryStream whose capacity already holds the sealed model (reused, rewound each time).</summary>
    [Benchmark]
    public async Task<long> Seal_to_MemoryStream()
    {
        MemoryStream destination = _destination ?? throw new InvalidOperationException("GlobalSetup has not run.");
        destination.Position = 0;
        destination.SetLength(0);
        using var source = new MemoryStream(_model, writable: false);
        await SealedModel.SealAsync(source, destination, Key, _options);
        return destination.Length;
    }

    public void Dispose()
    {
        _key?.Dispose();
        _key = null;
        _destination?.Dispose();
        _destination = null;
        GC.SuppressFinalize(this);
    }
}
