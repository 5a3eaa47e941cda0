using BenchmarkDotNet.Attributes;

namespace ModelSeal.Benchmarks;

/// <summary>
/// Random access (<see cref="SealedModel.OpenRandomAccessAsync"/> → <see cref="SealedModelReader"/>) over a sealed model
/// held in memory (a MemoryStream over one byte[] sealed in <see cref="GlobalSetup"/>). Every operation opens the reader
/// (header, key commitment, file length and the final chunk authenticated) and disposes it again.
/// </summary>
[Config(typeof(OperationConfig))]
public class RandomAccessBenchmarks : IDisposable
{
    private const int RandomReads = 64;
    private const int RandomReadLength = 4096;

    private readonly byte[] _readBuffer = new byte[1024 * 1024];
    private ModelKey? _key;
    private byte[] _sealed = [];
    private long[] _offsets = [];

    [Params(ModelSize.Cls_579KB, ModelSize.Det_4_7MB, ModelSize.Random_64MiB)]
    public ModelSize ModelSize { get; set; }

    private ModelKey Key => _key ?? throw new InvalidOperationException("GlobalSetup has not run.");

    [GlobalSetup]
    public void GlobalSetup()
    {
        _key = ModelKey.Generate("bench-key");
        byte[] model = ModelCatalog.Load(ModelSize);
        _sealed = ModelCatalog.Seal(model, _key, ModelSize);
        var random = new Random(4096);
        _offsets = [.. Enumerable.Range(0, RandomReads).Select(_ => random.NextInt64(model.Length - RandomReadLength + 1))];

        // The reader must return the model's bytes at those offsets.
        using SealedModelReader reader = SealedModel.OpenRandomAccessAsync(new MemoryStream(_sealed, writable: false), _key).GetAwaiter().GetResult();
        foreach (long offset in _offsets)
        {
            int read = reader.Read(offset, _readBuffer.AsSpan(0, RandomReadLength));
            if (read != RandomReadLength || !_readBuffer.AsSpan(0, read).SequenceEqual(model.AsSpan((int)offset, RandomReadLength)))
            {
                throw new InvalidOperationException($"Random access returned wrong bytes at {offset}.");
            }
        }
    }

    [GlobalCleanup]
    public void GlobalCleanup() => Dispose();

    /// <summary>OpenRandomAccessAsync only: header, commitment, length check and the final chunk.</summary>
    [Benchmark(Baseline = true)]
    public async Task<long> Open()
    {
        using SealedModelReader reader = await SealedModel.OpenRandomAccessAsync(new MemoryStream(_sealed, writable: false), Key);
        return reader.Length;
    }

    /// <summary>Open, then 64 reads of 4 KiB at seeded random offsets (each decrypts the one or two 16 KiB chunks it covers).</summary>
    [Benchmark]
    public async Task<long> Read_64_random_4KiB()
    {
        using SealedModelReader reader = await SealedModel.OpenRandomAccessAsync(new MemoryStream(_sealed, writable: false), Key);
        long total = 0;
        foreach (long offset in _offsets)
        {
            total += reader.Read(offset, _readBuffer.AsSpan(0, RandomReadLength));
        }

        return total;
    }

    /// <summary>Open, then read the whole model front to back through the reader in 1 MiB reads (one thread).</summary>
    [Benchmark]
    public async Task<long> Read_sequential_all()
    {
        using SealedModelReader reader = await SealedModel.OpenRandomAccessAsync(new MemoryStream(_sealed, writable: false), Key);
        long position = 0;
        int read;
        while ((read = reader.Read(position, _readBuffer)) > 0)
        {
            position += read;
        }

        return position;
    }

    public void Dispose()
    {
        _key?.Dispose();
        _key = null;
        GC.SuppressFinalize(this);
    }
}
