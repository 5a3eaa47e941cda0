using Microsoft.ML.OnnxRuntime;

namespace ModelSeal.OnnxRuntime.Tests;

public sealed class ZeroCopyTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData("classifier")]
    [InlineData("detector")]
    public async Task Zero_copy_ort_session_matches_plaintext_ort_session_across_collections(string model)
    {
        byte[] ort = TestSupport.ConvertToOrt(TestSupport.ModelPath(model), _temp.Path);
        Assert.Equal("ORTM"u8.ToArray(), ort[4..8]);
        string ortPath = _temp.Sub("plain.ort");
        await File.WriteAllBytesAsync(ortPath, ort, TestContext.Current.CancellationToken);
        byte[] sealedBytes = await TestSupport.SealAsync(ort);

        // Zero-copy disables weight prepacking, which changes the kernels' summation order (measured with ORT 1.31.1:
        // the classifier's softmax differs by up to 1.8e-7 from a prepacked session; the detector is identical). The
        // reference disables prepacking too, so the only difference left is where the model bytes live.
        using var referenceOptions = new SessionOptions();
        referenceOptions.AddSessionConfigEntry("session.disable_prepacking", "1");
        using var plain = new InferenceSession(ortPath, referenceOptions);
        List<NamedOnnxValue> inputs = TestSupport.Inputs(plain, seed: 11);
        var expected = TestSupport.Run(plain, inputs);
        using (var prepacked = new InferenceSession(ortPath))
        {
            var withPrepacking = TestSupport.Run(prepacked, inputs);
            Assert.True(TestSupport.MaxAbsDifference(expected, withPrepacking) < 1e-5f, "prepacking should change only the last bits");
        }

        var keys = new TestKeySource();
        byte[] buffer;
        using (var sealedStream = new MemoryStream(sealedBytes, writable: false))
        using (SealedOrtSession session = await SealedInferenceSession.CreateZeroCopyAsync(sealedStream, keys, cancellationToken: TestContext.Current.CancellationToken))
        {
            Assert.Equal(SessionLoadMode.ZeroCopy, session.Mode);
            Assert.Equal(ModelContentType.Ort, session.Header.ContentType);
            buffer = session.BufferForTesting!;
            Assert.Equal(ort, buffer);
            Assert.True(keys.AllKeysDisposed());

            for (int i = 0; i < 4; i++)
            {
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
                GC.WaitForPendingFinalizers();
                TestSupport.AssertBitwiseEqual(expected, TestSupport.Run(session.Session, inputs));
            }

            TestSupport.AssertBitwiseEqual(expected, TestSupport.Run(session.Session, inputs));
        }

        Assert.True(buffer.AsSpan().IndexOfAnyExcept((byte)0) < 0, "the buffer was not zeroed on dispose");
    }

    [Fact]
    public async Task Negative_control_zeroing_the_buffer_under_a_live_zero_copy_session_changes_outputs()
    {
        // Documents the hazard: ONNX Runtime really reads the caller's buffer, and does not notice when it changes.
        byte[] ort = TestSupport.ConvertToOrt(TestSupport.Classifier, _temp.Path);
        byte[] sealedBytes = await TestSupport.SealAsync(ort);
        using var sealedStream = new MemoryStream(sealedBytes, writable: false);
        using SealedOrtSession session = await SealedInferenceSession.CreateZeroCopyAsync(sealedStream, new TestKeySource());
        List<NamedOnnxValue> inputs = TestSupport.Inputs(session.Session, seed: 13);
        var before = TestSupport.Run(session.Session, inputs);

        session.ZeroBufferWhileAliveForTesting();

        var after = TestSupport.Run(session.Session, inputs);
        Assert.False(TestSupport.BitwiseEqual(before, after), "outputs did not change: ORT did not read the buffer in place");
    }

    [Fact]
    public async Task LoadAsync_uses_zero_copy_for_ort_and_dispose_makes_the_session_unavailable()
    {
        byte[] ort = TestSupport.ConvertToOrt(TestSupport.Classifier, _temp.Path);
        string sealedPath = _temp.Sub("classifier.ort.mseal");
        await File.WriteAllBytesAsync(sealedPath, await TestSupport.SealAsync(ort), TestContext.Current.CancellationToken);
        using var options = new SessionOptions();

        SealedOrtSession session = await SealedInferenceSession.LoadAsync(sealedPath, new TestKeySource(), options);
        Assert.Equal(SessionLoadMode.ZeroCopy, session.Mode);
        Assert.NotEmpty(TestSupport.Run(session.Session, TestSupport.Inputs(session.Session, seed: 1)));
        session.Dispose();
        session.Dispose();

        Assert.Throws<ObjectDisposedException>(() => session.Session);
        Assert.True(session.BufferForTesting!.AsSpan().IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public async Task Zero_copy_of_an_onnx_model_is_refused_before_any_key_is_requested()
    {
        byte[] sealedBytes = await TestSupport.SealAsync(File.ReadAllBytes(TestSupport.Classifier));
        using var sealedStream = new MemoryStream(sealedBytes, writable: false);
        var keys = new TestKeySource();

        var error = await Assert.ThrowsAsync<NotSupportedException>(() => SealedInferenceSession.CreateZeroCopyAsync(sealedStream, keys));

        Assert.Contains("onnx", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, keys.Requests);
    }

    [Theory]
    [InlineData(ModelContentType.TFLite)]
    [InlineData(ModelContentType.Unknown)]
    public async Task LoadAsync_refuses_models_onnx_runtime_cannot_load_and_points_to_the_raw_bytes(ModelContentType type)
    {
        byte[] plaintext = type == ModelContentType.TFLite ? File.ReadAllBytes(TestSupport.TfLite) : TestSupport.KeyBytes(99);
        byte[] sealedBytes = await TestSupport.SealAsync(plaintext);
        var keys = new TestKeySource();
        using var sealedStream = new MemoryStream(sealedBytes, writable: false);

        var error = await Assert.ThrowsAsync<NotSupportedException>(() => SealedInferenceSession.LoadAsync(sealedStream, keys));

        Assert.Contains("DecryptedModel", error.Message, StringComparison.Ordinal);
        Assert.Contains($"'{type}'", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, keys.Requests);
    }
}
