using BenchmarkDotNet.Attributes;

namespace ModelSeal.Benchmarks;

/// <summary>
/// Whole-model decryption from a sealed file on disk (written to a temporary file in <see cref="GlobalSetup"/>),
/// opened unbuffered (bufferSize 0) with FileOptions.SequentialScan as an application would. After the first
/// iteration the file is in the OS page cache, so this measures reading from the page cache, not from the device.
/// </summary>
[Config(typeof(BenchmarkConfig))]
public class FileDecryptBenchmarks : IDisposable
{
    private static readonly DecryptOptions OneThread = new() { MaxDegreeOfParallelism = 1 };
    private static readonly DecryptOptions AllThreads = new() { MaxDegreeOfParallelism = Environment.ProcessorCount };

    private ModelKey? _key;
    private string? _path;

    [Params(ModelSize.Random_64MiB)]
    public ModelSize ModelSize { get; set; }

    private ModelKey Key => _key ?? throw new InvalidOperationException("GlobalSetup has not run.");

    private string SealedPath => _path ?? throw new InvalidOperationException("GlobalSetup has not run.");

    [GlobalSetup]
    public void GlobalSetup()
    {
        _key = ModelKey.Generate("bench-key");
        byte[] sealedBytes = ModelCatalog.Seal(ModelCatalog.Load(ModelSize), _key, ModelSize);
        _path = Path.Combine(Path.GetTempPath(), $"modelseal-bench-{Guid.NewGuid():N}{SealedModel.FileExtension}");
        File.WriteAllBytes(_path, sealedBytes);
    }

    [GlobalCleanup]
    public void GlobalCleanup() => Dispose();

    /// <summary>DecryptAsync with one thread straight from the file.</summary>
    [Benchmark(Baseline = true)]
    public async Task<int> Decrypt_1_thread()
    {
        using FileStream source = OpenSealed();
        using DecryptedModel model = await SealedModel.DecryptAsync(source, Key, OneThread);
        return model.Length;
    }

    /// <summary>DecryptAsync with Environment.ProcessorCount threads straight from the file.</summary>
    [Benchmark]
    public async Task<int> Decrypt_N_threads()
    {
        using FileStream source = OpenSealed();
        using DecryptedModel model = await SealedModel.DecryptAsync(source, Key, AllThreads);
        return model.Length;
    }

    /// <summary>The naive approach: File.ReadAllBytes, then decrypt the array whole with one thread.</summary>
    [Benchmark]
    public async Task<int> Paper_baseline_ReadAllBytes_then_decrypt()
    {
        byte[] ciphertext = await File.ReadAllBytesAsync(SealedPath);
        using var source = new MemoryStream(ciphertext, writable: false);
        using DecryptedModel model = await SealedModel.DecryptAsync(source, Key, OneThread);
        return model.Length;
    }

    public void Dispose()
    {
        _key?.Dispose();
        _key = null;
        if (_path is not null)
        {
            File.Delete(_path);
            _path = null;
        }

        GC.SuppressFinalize(this);
    }

    private FileStream OpenSealed() =>
        new(SealedPath, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.SequentialScan);
}
