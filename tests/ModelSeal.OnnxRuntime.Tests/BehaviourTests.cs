using Microsoft.ML.OnnxRuntime;

namespace ModelSeal.OnnxRuntime.Tests;

public sealed class BehaviourTests
{
    [Fact]
    public async Task Loading_runs_off_the_callers_synchronization_context()
    {
        byte[] sealedBytes = await TestSupport.SealAsync(File.ReadAllBytes(TestSupport.Classifier));
        using var temp = new TempDirectory();
        byte[] sealedOrt = await TestSupport.SealAsync(TestSupport.ConvertToOrt(TestSupport.Classifier, temp.Path));
        var context = new CountingSynchronizationContext();
        SynchronizationContext? previous = SynchronizationContext.Current;
        int callerThread = Environment.CurrentManagedThreadId;
        int keyThread = -1;
        var keys = new TestKeySource { OnRequest = () => keyThread = Environment.CurrentManagedThreadId };
        SynchronizationContext.SetSynchronizationContext(context);
        try
        {
            // Blocking on purpose: a loader that captured the caller's context would post to it (or deadlock under a
            // single-threaded context); a thread-pool loader never touches it.
#pragma warning disable xUnit1031
            using var copyStream = new MemoryStream(sealedBytes, writable: false);
            using InferenceSession copy = SealedInferenceSession.CreateAsync(copyStream, keys).GetAwaiter().GetResult();
            using var ortStream = new MemoryStream(sealedOrt, writable: false);
            using SealedOrtSession zeroCopy = SealedInferenceSession.LoadAsync(ortStream, keys).GetAwaiter().GetResult();
#pragma warning restore xUnit1031
            Assert.NotEmpty(copy.OutputMetadata);
            Assert.Equal(SessionLoadMode.ZeroCopy, zeroCopy.Mode);
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }

        Assert.Equal(0, context.Posts);
        Assert.Equal(0, context.Sends);
        Assert.Equal(2, keys.Requests);
        Assert.NotEqual(callerThread, keyThread);
    }

    [Fact]
    public async Task A_pre_cancelled_token_throws_and_leaves_nothing_open()
    {
        using var temp = new TempDirectory();
        string sealedPath = temp.Sub("classifier.mseal");
        await File.WriteAllBytesAsync(sealedPath, await TestSupport.SealAsync(File.ReadAllBytes(TestSupport.Classifier)), TestContext.Current.CancellationToken);
        var keys = new TestKeySource();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => SealedInferenceSession.CreateAsync(sealedPath, keys, cancellationToken: cts.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => SealedInferenceSession.LoadAsync(sealedPath, keys, cancellationToken: cts.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => SealedInferenceSession.CreateZeroCopyAsync(sealedPath, keys, cancellationToken: cts.Token));

        Assert.Equal(0, keys.Requests);
        using (new FileStream(sealedPath, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
        {
            // Opening exclusively succeeds: no handle was left open.
        }
    }

    [Fact]
    public async Task Cancelling_during_key_retrieval_throws_and_disposes_the_key()
    {
        using var temp = new TempDirectory();
        string sealedPath = temp.Sub("classifier.mseal");
        await File.WriteAllBytesAsync(sealedPath, await TestSupport.SealAsync(File.ReadAllBytes(TestSupport.Classifier)), TestContext.Current.CancellationToken);
        using var cts = new CancellationTokenSource();
        var keys = new TestKeySource { OnRequest = cts.Cancel };

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => SealedInferenceSession.LoadAsync(sealedPath, keys, cancellationToken: cts.Token));

        Assert.Equal(1, keys.Requests);
        Assert.True(keys.AllKeysDisposed());
        using (new FileStream(sealedPath, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
        {
        }
    }

    [Fact]
    public async Task A_wrong_key_surfaces_the_authentication_exception_in_every_mode()
    {
        using var temp = new TempDirectory();
        byte[] sealedOnnx = await TestSupport.SealAsync(File.ReadAllBytes(TestSupport.Classifier));
        byte[] sealedOrt = await TestSupport.SealAsync(TestSupport.ConvertToOrt(TestSupport.Classifier, temp.Path));
        var wrong = new TestKeySource(TestSupport.KeyBytes(2));

        using (var s = new MemoryStream(sealedOnnx, writable: false))
        {
            await Assert.ThrowsAsync<SealedModelAuthenticationException>(() => SealedInferenceSession.CreateAsync(s, wrong));
        }

        using (var s = new MemoryStream(sealedOnnx, writable: false))
        {
            await Assert.ThrowsAsync<SealedModelAuthenticationException>(() => SealedInferenceSession.LoadAsync(s, wrong));
        }

        using (var s = new MemoryStream(sealedOrt, writable: false))
        {
            await Assert.ThrowsAsync<SealedModelAuthenticationException>(() => SealedInferenceSession.CreateZeroCopyAsync(s, wrong));
        }

        using var options = new SessionOptions();
        using (var s = new MemoryStream(sealedOrt, writable: false))
        {
            await Assert.ThrowsAsync<SealedModelAuthenticationException>(() => SealedInferenceSession.LoadAsync(s, wrong, options));
        }

        Assert.Equal(4, wrong.Requests);
        Assert.True(wrong.AllKeysDisposed());
    }

    [Fact]
    public async Task A_key_with_another_id_surfaces_the_key_exception()
    {
        byte[] sealedOnnx = await TestSupport.SealAsync(File.ReadAllBytes(TestSupport.Classifier));
        var other = new TestKeySource(TestSupport.KeyBytes(1), "other-key");
        using var s = new MemoryStream(sealedOnnx, writable: false);

        await Assert.ThrowsAsync<ModelKeyException>(() => SealedInferenceSession.CreateAsync(s, other));
        Assert.True(other.AllKeysDisposed());
    }

    [Fact]
    public async Task Not_a_sealed_model_is_a_format_error_and_no_key_is_requested()
    {
        var keys = new TestKeySource();
        using var s = new MemoryStream(File.ReadAllBytes(TestSupport.Classifier), writable: false);

        await Assert.ThrowsAnyAsync<SealedModelFormatException>(() => SealedInferenceSession.CreateAsync(s, keys));
        Assert.Equal(0, keys.Requests);
    }

    [Fact]
    public async Task Key_file_source_works_end_to_end()
    {
        using var temp = new TempDirectory();
        string keyPath = temp.Sub("dev.key");
        using (ModelKey key = ModelKey.Import(TestSupport.KeyBytes(1), TestSupport.KeyId))
        {
            KeyFile.Write(keyPath, key);
        }

        string sealedPath = temp.Sub("classifier.mseal");
        await File.WriteAllBytesAsync(sealedPath, await TestSupport.SealAsync(File.ReadAllBytes(TestSupport.Classifier)), TestContext.Current.CancellationToken);

        using SealedOrtSession session = await SealedInferenceSession.LoadAsync(sealedPath, new KeyFileSource(keyPath));
        Assert.Equal("model", session.Header.ModelId);
        Assert.NotEmpty(TestSupport.Run(session.Session, TestSupport.Inputs(session.Session, seed: 2)));
    }
}
