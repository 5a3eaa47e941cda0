using BenchmarkDotNet.Attributes;

namespace ModelSeal.Benchmarks;

/// <summary>
/// Whole-model decryption, verification and streaming from a sealed model held in memory (a MemoryStream over one
/// byte[] sealed once in <see cref="GlobalSetup"/>), so the numbers exclude the disk and the page cache. Each operation
/// includes allocating the plaintext buffer and zeroing it again when the <see cref="DecryptedModel"/> is disposed.
/// </summary>
[Config(typeof(BenchmarkConfig))]
public class DecryptBenchmarks : IDisposable
{
    private static readonly DecryptOptions OneThread = new() { MaxDegreeOfParallelism = 1 };
    private static readonly DecryptOptions AllThreads = new() { MaxDegreeOfParallelism = Environment.ProcessorCount };

    private readonly byte[] _readBuffer = new byte[1024 * 1024];
    private ModelKey? _key;
    private byte[] _sealed = [];

    [Params(ModelSize.Cls_579KB, ModelSize.Det_4_7MB, ModelSize.Random_64MiB)]
    public ModelSize ModelSize { get; set; }

    private ModelKey Key => _key ?? throw new InvalidOperationException("GlobalSetup has not run.");

    [GlobalSetup]
    public void GlobalSetup()
    {
        _key = ModelKey.Generate("bench-key");
        _sealed = ModelCatalog.Seal(ModelCatalog.Load(ModelSize), _key, ModelSize);
    }

    [GlobalCleanup]
    public void GlobalCleanup() => Dispose();

    /// <summary>DecryptAsync with one thread: read the sealed stream in ~1 MiB batches, decrypt into one buffer.</summary>
    [Benchmark(Baseline = true)]
    public async Task<int> Decrypt_1_thread()
    {
        using var source = new MemoryStream(_sealed, writable: false);
        using DecryptedModel model = await SealedModel.DecryptAsync(source, Key, OneThread);
        return model.Length;
    }

    /// <summary>DecryptAsync with Environment.ProcessorCount threads.</summary>
    [Benchmark]
    public async Task<int> Decrypt_N_threads()
    {
        using var source = new MemoryStream(_sealed, writable: false);
        using DecryptedModel model = await SealedModel.DecryptAsync(source, Key, AllThreads);
        return model.Length;
    }

    /// <summary>DecryptAsync(ReadOnlyMemory) with one thread: decrypts straight from the sealed bytes, no reader, no copy.</summary>
    [Benchmark]
    public async Task<int> Decrypt_in_memory_1_thread()
    {
        using DecryptedModel model = await SealedModel.DecryptAsync(_sealed, Key, OneThread);
        return model.Length;
    }

    /// <summary>DecryptAsync(ReadOnlyMemory) with Environment.ProcessorCount threads claiming 8-chunk items.</summary>
    [Benchmark]
    public async Task<int> Decrypt_in_memory_N_threads()
    {
        using DecryptedModel model = await SealedModel.DecryptAsync(_sealed, Key, AllThreads);
        return model.Length;
    }

    /// <summary>VerifyAsync with one thread: every chunk authenticated, no plaintext kept (no model-sized buffer).</summary>
    [Benchmark]
    public async Task<long> Verify_1_thread()
    {
        using var source = new MemoryStream(_sealed, writable: false);
        SealedModelHeader header = await SealedModel.VerifyAsync(source, Key, OneThread);
        return header.PlaintextLength;
    }

    /// <summary>VerifyAsync with Environment.ProcessorCount threads: every chunk authenticated, no plaintext kept.</summary>
    [Benchmark]
    public async Task<long> Verify_N_threads()
    {
        using var source = new MemoryStream(_sealed, writable: false);
        SealedModelHeader header = await SealedModel.VerifyAsync(source, Key, AllThreads);
        return header.PlaintextLength;
    }

    /// <summary>OpenReadAsync, then read to the end through a reused 1 MiB buffer (one chunk per read, one thread).</summary>
    [Benchmark]
    public async Task<long> Stream_read_all()
    {
        using var source = new MemoryStream(_sealed, writable: false);
        await using SealedModelStream stream = await SealedModel.OpenReadAsync(source, Key);
        long total = 0;
        int read;
        while ((read = await stream.ReadAsync(_readBuffer)) > 0)
        {
            total += read;
        }

        return total;
    }

    /// <summary>
    /// The naive approach: copy the whole sealed file into a fresh byte[] first (what File.ReadAllBytes does), then
    /// decrypt it whole with one thread. The extra cost over <see cref="Decrypt_1_thread"/> is the full-size
    /// ciphertext array: its allocation, first touch of its pages, and the copy.
    /// </summary>
    [Benchmark]
    public async Task<int> Paper_baseline_ReadAll_then_decrypt()
    {
        using var file = new MemoryStream(_sealed, writable: false);
        byte[] ciphertext = new byte[file.Length];
        file.ReadExactly(ciphertext);
        using var source = new MemoryStream(ciphertext, writable: false);
        using DecryptedModel model = await SealedModel.DecryptAsync(source, Key, OneThread);
        return model.Length;
    }

    public void Dispose()
    {
        _key?.Dispose();
        _key = null;
        GC.SuppressFinalize(this);
    }
}
