using Microsoft.ML.OnnxRuntime;

namespace ModelSeal.OnnxRuntime.Tests;

public sealed class CopyModeTests
{
    [Theory]
    [InlineData("classifier")]
    [InlineData("detector")]
    public async Task Sealed_session_outputs_equal_plaintext_session_outputs_bitwise(string model)
    {
        string path = TestSupport.ModelPath(model);
        byte[] sealedBytes = await TestSupport.SealAsync(File.ReadAllBytes(path));
        var keys = new TestKeySource();

        using var plain = new InferenceSession(path);
        List<NamedOnnxValue> inputs = TestSupport.Inputs(plain, seed: 42);
        var expected = TestSupport.Run(plain, inputs);

        using var sealedStream = new MemoryStream(sealedBytes, writable: false);
        using InferenceSession session = await SealedInferenceSession.CreateAsync(sealedStream, keys, cancellationToken: TestContext.Current.CancellationToken);

        TestSupport.AssertBitwiseEqual(expected, TestSupport.Run(session, inputs));
        Assert.Equal(1, keys.Requests);
        Assert.True(keys.AllKeysDisposed());
    }

    [Fact]
    public async Task A_seekable_stream_that_starts_mid_way_is_rewound_to_the_sealed_models_start()
    {
        byte[] sealedBytes = await TestSupport.SealAsync(File.ReadAllBytes(TestSupport.Classifier));
        using var plain = new InferenceSession(TestSupport.Classifier);
        List<NamedOnnxValue> inputs = TestSupport.Inputs(plain, seed: 7);

        using var offset = new MemoryStream([.. new byte[100], .. sealedBytes], writable: false) { Position = 100 };
        using InferenceSession session = await SealedInferenceSession.CreateAsync(offset, new TestKeySource(), cancellationToken: TestContext.Current.CancellationToken);

        TestSupport.AssertBitwiseEqual(TestSupport.Run(plain, inputs), TestSupport.Run(session, inputs));
        Assert.Equal(offset.Length, offset.Position);
    }

    [Fact]
    public async Task Copy_mode_zeroes_the_buffer_right_after_the_session_exists_for_onnx_and_ort()
    {
        using var temp = new TempDirectory();
        byte[] ort = TestSupport.ConvertToOrt(TestSupport.Classifier, temp.Path);
        string ortPath = temp.Sub("plain.ort");
        await File.WriteAllBytesAsync(ortPath, ort, TestContext.Current.CancellationToken);

        foreach (string plainPath in new[] { TestSupport.Classifier, ortPath })
        {
            byte[] sealedBytes = await TestSupport.SealAsync(File.ReadAllBytes(plainPath));
            byte[]? observed = null;
            SealedInferenceSession.CopyModeBufferObserverForTesting.Value = buffer => observed = buffer;
            InferenceSession session;
            try
            {
                using var sealedStream = new MemoryStream(sealedBytes, writable: false);
                session = await SealedInferenceSession.CreateAsync(sealedStream, new TestKeySource());
            }
            finally
            {
                SealedInferenceSession.CopyModeBufferObserverForTesting.Value = null;
            }

            using (session)
            {
                Assert.NotNull(observed);
                Assert.Equal(new FileInfo(plainPath).Length, observed.Length);
                Assert.True(observed.AsSpan().IndexOfAnyExcept((byte)0) < 0, "copy mode left plaintext in the buffer");

                // The session does not depend on the zeroed buffer: outputs equal a session on the plaintext file.
                using var plain = new InferenceSession(plainPath);
                List<NamedOnnxValue> inputs = TestSupport.Inputs(plain, seed: 21);
                GC.Collect();
                TestSupport.AssertBitwiseEqual(TestSupport.Run(plain, inputs), TestSupport.Run(session, inputs));
            }
        }
    }

    [Fact]
    public async Task Classifier_outputs_are_a_softmax_over_two_classes()
    {
        byte[] sealedBytes = await TestSupport.SealAsync(File.ReadAllBytes(TestSupport.Classifier));
        using var sealedStream = new MemoryStream(sealedBytes, writable: false);
        using InferenceSession session = await SealedInferenceSession.CreateAsync(sealedStream, new TestKeySource());

        Assert.Equal("x", Assert.Single(session.InputMetadata).Key);
        using IDisposableReadOnlyCollection<DisposableNamedOnnxValue> outputs = session.Run(TestSupport.Inputs(session, seed: 7));
        float[] probabilities = [.. Assert.Single(outputs).AsTensor<float>()];
        Assert.Equal(2, probabilities.Length);
        Assert.Equal(1.0f, probabilities.Sum(), 1e-4f);
    }

    [Fact]
    public async Task Path_overload_and_non_seekable_stream_give_the_same_outputs()
    {
        using var temp = new TempDirectory();
        string sealedPath = temp.Sub("classifier.mseal");
        await File.WriteAllBytesAsync(sealedPath, await TestSupport.SealAsync(File.ReadAllBytes(TestSupport.Classifier)), TestContext.Current.CancellationToken);
        var progress = new List<ModelSealProgress>();

        using var plain = new InferenceSession(TestSupport.Classifier);
        List<NamedOnnxValue> inputs = TestSupport.Inputs(plain, seed: 3);
        var expected = TestSupport.Run(plain, inputs);

        using (InferenceSession fromPath = await SealedInferenceSession.CreateAsync(sealedPath, new TestKeySource()))
        {
            TestSupport.AssertBitwiseEqual(expected, TestSupport.Run(fromPath, inputs));
        }

        await using FileStream file = File.OpenRead(sealedPath);
        using var nonSeekable = new NonSeekableStream(file);
        using var options = new SessionOptions();
        using (InferenceSession fromStream = await SealedInferenceSession.CreateAsync(nonSeekable, new TestKeySource(), options, new SynchronousProgress(progress.Add)))
        {
            TestSupport.AssertBitwiseEqual(expected, TestSupport.Run(fromStream, inputs));
        }

        Assert.NotEmpty(progress);
        Assert.Equal(progress[^1].TotalBytes, progress[^1].BytesDone);
    }

    [Fact]
    public async Task LoadAsync_uses_copy_mode_for_onnx_and_keeps_no_buffer()
    {
        byte[] sealedBytes = await TestSupport.SealAsync(File.ReadAllBytes(TestSupport.Classifier));
        using var sealedStream = new MemoryStream(sealedBytes, writable: false);
        using SealedOrtSession loaded = await SealedInferenceSession.LoadAsync(sealedStream, new TestKeySource());

        Assert.Equal(SessionLoadMode.Copy, loaded.Mode);
        Assert.Equal(ModelContentType.Onnx, loaded.Header.ContentType);
        Assert.Null(loaded.BufferForTesting);
        using var plain = new InferenceSession(TestSupport.Classifier);
        List<NamedOnnxValue> inputs = TestSupport.Inputs(plain, seed: 5);
        TestSupport.AssertBitwiseEqual(TestSupport.Run(plain, inputs), TestSupport.Run(loaded.Session, inputs));
    }
}

/// <summary>IProgress that reports on the calling thread (Progress&lt;T&gt; would post to a context).</summary>
internal sealed class SynchronousProgress(Action<ModelSealProgress> report) : IProgress<ModelSealProgress>
{
    private readonly Lock _gate = new();

    public void Report(ModelSealProgress value)
    {
        lock (_gate)
        {
            report(value);
        }
    }
}
