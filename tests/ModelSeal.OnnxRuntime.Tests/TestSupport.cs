using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace ModelSeal.OnnxRuntime.Tests;

/// <summary>Repository files, sealing and inference helpers.</summary>
internal static class TestSupport
{
    public const string KeyId = "test-ort";

    /// <summary>PaddleOCR direction classifier: input x float32 [N,3,48,192].</summary>
    public static string Classifier => RepoPaths.SampleModel;

    /// <summary>PaddleOCR v4 text detector (4.7 MB).</summary>
    public static string Detector => RepoPaths.TestModels("ch_PP-OCRv4_det_infer.onnx");

    public static string TfLite => RepoPaths.TestModels("melspectrogram.tflite");

    public static string ModelPath(string name) => name switch
    {
        "classifier" => Classifier,
        "detector" => Detector,
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
    };

    public static byte[] KeyBytes(int seed)
    {
        var bytes = new byte[ModelKey.SizeInBytes];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static async Task<byte[]> SealAsync(byte[] plaintext, ModelContentType? contentType = null)
    {
        using ModelKey key = ModelKey.Import(KeyBytes(1), KeyId);
        using var source = new MemoryStream(plaintext, writable: false);
        using var destination = new MemoryStream();
        await SealedModel.SealAsync(source, destination, key, new SealOptions { ModelId = "model", ModelVersion = "1", ContentType = contentType });
        return destination.ToArray();
    }

    /// <summary>Seeded float inputs for every input of the session, dynamic dimensions resolved (batch 1, others 64).</summary>
    public static List<NamedOnnxValue> Inputs(InferenceSession session, int seed)
    {
        var random = new Random(seed);
        var inputs = new List<NamedOnnxValue>();
        foreach ((string name, NodeMetadata meta) in session.InputMetadata)
        {
            Assert.Equal(typeof(float), meta.ElementType);
            int[] dims = [.. meta.Dimensions.Select((d, i) => d > 0 ? d : i == 0 ? 1 : 64)];
            var tensor = new DenseTensor<float>(dims);
            Span<float> buffer = tensor.Buffer.Span;
            for (int i = 0; i < buffer.Length; i++)
            {
                buffer[i] = random.NextSingle();
            }

            inputs.Add(NamedOnnxValue.CreateFromTensor(name, tensor));
        }

        return inputs;
    }

    /// <summary>Runs the session and returns every output as raw float bits, by name.</summary>
    public static SortedDictionary<string, byte[]> Run(InferenceSession session, IReadOnlyCollection<NamedOnnxValue> inputs)
    {
        var result = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        using IDisposableReadOnlyCollection<DisposableNamedOnnxValue> outputs = session.Run(inputs);
        foreach (DisposableNamedOnnxValue output in outputs)
        {
            float[] values = output.AsTensor<float>().ToArray();
            result.Add(output.Name, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
        }

        return result;
    }

    public static void AssertBitwiseEqual(SortedDictionary<string, byte[]> expected, SortedDictionary<string, byte[]> actual)
    {
        Assert.Equal(expected.Keys, actual.Keys);
        foreach ((string name, byte[] bits) in expected)
        {
            Assert.True(bits.AsSpan().SequenceEqual(actual[name]), $"output '{name}' differs");
        }
    }

    public static bool BitwiseEqual(SortedDictionary<string, byte[]> a, SortedDictionary<string, byte[]> b) =>
        a.Keys.SequenceEqual(b.Keys) && a.All(pair => pair.Value.AsSpan().SequenceEqual(b[pair.Key]));

    public static float MaxAbsDifference(SortedDictionary<string, byte[]> a, SortedDictionary<string, byte[]> b) =>
        a.Max(pair =>
        {
            ReadOnlySpan<float> x = MemoryMarshal.Cast<byte, float>(pair.Value);
            ReadOnlySpan<float> y = MemoryMarshal.Cast<byte, float>(b[pair.Key]);
            float max = 0;
            for (int i = 0; i < x.Length; i++)
            {
                max = Math.Max(max, Math.Abs(x[i] - y[i]));
            }

            return max;
        });

    /// <summary>Converts an .onnx model to ORT format with ONNX Runtime itself.</summary>
    public static byte[] ConvertToOrt(string onnxPath, string directory)
    {
        string ortPath = Path.Combine(directory, Path.GetFileNameWithoutExtension(onnxPath) + ".ort");
        using (var options = new SessionOptions())
        {
            options.GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_BASIC;
            options.OptimizedModelFilePath = ortPath;
            options.AddSessionConfigEntry("session.save_model_format", "ORT");
            using var session = new InferenceSession(onnxPath, options);
        }

        return File.ReadAllBytes(ortPath);
    }
}

/// <summary>A local key source that records every key it hands out.</summary>
internal sealed class TestKeySource(byte[] keyBytes, string keyId = TestSupport.KeyId) : IModelKeySource
{
    private readonly List<ModelKey> _issued = [];

    public TestKeySource()
        : this(TestSupport.KeyBytes(1))
    {
    }

    /// <summary>Runs inside GetKeyAsync (for example to cancel).</summary>
    public Action? OnRequest { get; init; }

    public int Requests { get; private set; }

    public SealedModelHeader? LastHeader { get; private set; }

    public ValueTask<ModelKey> GetKeyAsync(SealedModelHeader header, CancellationToken cancellationToken = default)
    {
        Requests++;
        LastHeader = header;
        OnRequest?.Invoke();
        ModelKey key = ModelKey.Import(keyBytes, keyId);
        lock (_issued)
        {
            _issued.Add(key);
        }

        return ValueTask.FromResult(key);
    }

    /// <summary>True when every key handed out has been disposed by the loader.</summary>
    public bool AllKeysDisposed()
    {
        lock (_issued)
        {
            return _issued.All(key =>
            {
                try
                {
                    key.Export(new byte[ModelKey.SizeInBytes]);
                    return false;
                }
                catch (ObjectDisposedException)
                {
                    return true;
                }
            });
        }
    }
}

/// <summary>Counts every Post and Send; forwards them so nothing deadlocks.</summary>
internal sealed class CountingSynchronizationContext : SynchronizationContext
{
    private int _posts;
    private int _sends;

    public int Posts => Volatile.Read(ref _posts);

    public int Sends => Volatile.Read(ref _sends);

    public override void Post(SendOrPostCallback d, object? state)
    {
        Interlocked.Increment(ref _posts);
        ThreadPool.QueueUserWorkItem(_ => d(state));
    }

    public override void Send(SendOrPostCallback d, object? state)
    {
        Interlocked.Increment(ref _sends);
        d(state);
    }
}

/// <summary>A read-only stream that cannot seek and has no length, like an Android asset stream.</summary>
internal sealed class NonSeekableStream(Stream inner) : Stream
{
    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, Math.Min(count, 1000));

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        inner.ReadAsync(buffer[..Math.Min(buffer.Length, 1000)], cancellationToken);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
