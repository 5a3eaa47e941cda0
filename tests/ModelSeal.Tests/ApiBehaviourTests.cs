namespace ModelSeal.Tests;

/// <summary>How the async API behaves: off the caller's context, cancellable, reporting progress, zeroing on dispose.</summary>
public sealed class ApiBehaviourTests
{
    private static readonly ModelKey Key = ModelKey.Generate(Seal.KeyId);
    private static readonly byte[] Model = TestFiles.Bytes(3_000_000, 3);
    private static readonly byte[] Sealed = Seal.Bytes(Model, Key);

    [Fact]
    public void Work_never_runs_on_the_callers_synchronization_context()
    {
        var context = new CountingContext();
        SynchronizationContext? previous = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(context);
        try
        {
            // Blocking on the result from a context that never pumps would deadlock if any continuation came back to it.
#pragma warning disable xUnit1031 // Blocking is the point: it proves no continuation needs this context.
            using DecryptedModel model = SealedModel.DecryptAsync(new ForwardOnlyStream(Sealed), Key).GetAwaiter().GetResult();
            SealedModel.VerifyAsync(new ForwardOnlyStream(Sealed), Key).GetAwaiter().GetResult();
            SealedModel.SealAsync(new MemoryStream(Model), new MemoryStream(), Key, new SealOptions { ModelId = "m", ModelVersion = "1" }).GetAwaiter().GetResult();
#pragma warning restore xUnit1031
            Assert.True(model.Span.SequenceEqual(Model));
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }

        Assert.Equal(0, context.Posts);
    }

    [Fact]
    public async Task Cancellation_stops_work_and_releases_nothing()
    {
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => SealedModel.DecryptAsync(new MemoryStream(Sealed), Key, cancellationToken: cts.Token));

        // Cancelled from the progress callback in the middle of decryption (a model of many batches).
        byte[] large = Seal.Bytes(TestFiles.Bytes(24 << 20, 24), Key);
        using var midway = new CancellationTokenSource();
        var progress = new SynchronousProgress(p =>
        {
            if (p.BytesDone > 0)
            {
                midway.Cancel();
            }
        });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => SealedModel.DecryptAsync(new MemoryStream(large), Key, progress: progress, cancellationToken: midway.Token));
    }

    [Fact]
    public async Task Progress_is_reported_up_to_the_total()
    {
        var reports = new List<ModelSealProgress>();
        var progress = new SynchronousProgress(reports.Add);
        using (await SealedModel.DecryptAsync(new MemoryStream(Sealed), Key, progress: progress))
        {
        }

        AssertProgressUpToTotal(reports);

        // From a file (positional reads by every worker).
        reports.Clear();
        string path = Path.Combine(Path.GetTempPath(), $"modelseal-progress-{Guid.NewGuid():N}.mseal");
        await File.WriteAllBytesAsync(path, Sealed);
        try
        {
            await using var file = new FileStream(path, FileMode.Open, FileAccess.Read);
            using (await SealedModel.DecryptAsync(file, Key, progress: progress))
            {
            }

            AssertProgressUpToTotal(reports);
        }
        finally
        {
            File.Delete(path);
        }

        reports.Clear();
        await SealedModel.SealAsync(new MemoryStream(Model), new MemoryStream(), Key, new SealOptions { ModelId = "m", ModelVersion = "1" }, progress);
        Assert.Equal(Model.Length, reports[^1].BytesDone);
    }

    [Fact]
    public async Task Warm_up_runs_off_the_callers_context_and_honours_cancellation()
    {
        var context = new CountingContext();
        SynchronizationContext? previous = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(context);
        try
        {
#pragma warning disable xUnit1031 // Blocking is the point: it proves no continuation needs this context.
            SealedModel.WarmUpAsync(TestContext.Current.CancellationToken).GetAwaiter().GetResult();
#pragma warning restore xUnit1031
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }

        Assert.Equal(0, context.Posts);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => SealedModel.WarmUpAsync(cancelled.Token));
    }

    private static void AssertProgressUpToTotal(List<ModelSealProgress> reports)
    {
        Assert.NotEmpty(reports);
        Assert.All(reports, r => Assert.Equal(Model.Length, r.TotalBytes));
        Assert.Equal(Model.Length, reports[^1].BytesDone);
        Assert.Equal(reports.Select(r => r.BytesDone).Order(), reports.Select(r => r.BytesDone));
    }

    [Fact]
    public async Task Decrypting_into_a_buffer_checks_its_size_and_zeroes_it_on_failure()
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() => SealedModel.DecryptAsync(Sealed.AsMemory(), new byte[Model.Length - 1], Key));
        Assert.Equal("destination", e.ParamName);
        Assert.Contains($"is {Model.Length} bytes", e.Message, StringComparison.Ordinal);

        // A chunk near the end fails after most of the model was decrypted into the buffer: all of it is zeroed again.
        byte[] tampered = (byte[])Sealed.Clone();
        tampered[^100] ^= 1;
        byte[] destination = Enumerable.Repeat((byte)0xA5, Model.Length + 1).ToArray();
        await Assert.ThrowsAsync<SealedModelAuthenticationException>(() => SealedModel.DecryptAsync(tampered.AsMemory(), destination, Key));
        Assert.True(destination.AsSpan(0, Model.Length).IndexOfAnyExcept((byte)0) < 0, "the model's part of the buffer must be zeroed");
        Assert.Equal(0xA5, destination[^1]);
    }

    [Fact]
    public async Task Disposing_a_decrypted_model_zeroes_its_buffer()
    {
        DecryptedModel model = await SealedModel.DecryptAsync(new MemoryStream(Sealed), Key);
        byte[] array = model.DangerousGetArray();
        Assert.Equal(Model.Length, array.Length);
        Assert.Equal(Model, array);
        model.Dispose();
        Assert.True(array.AsSpan().IndexOfAnyExcept((byte)0) < 0, "the buffer still holds model bytes");
        Assert.Throws<ObjectDisposedException>(() => model.Span.Length);
    }

    [Fact]
    public async Task Sealing_needs_a_seekable_model_stream_and_streams_refuse_to_seek()
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() => SealedModel.SealAsync(new ForwardOnlyStream(Model), new MemoryStream(), Key, new SealOptions { ModelId = "m", ModelVersion = "1" }));
        Assert.Contains("seekable", e.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<ArgumentException>(() => SealedModel.OpenRandomAccessAsync(new ForwardOnlyStream(Sealed), Key));

        await using SealedModelStream stream = await SealedModel.OpenReadAsync(new MemoryStream(Sealed), Key);
        Assert.False(stream.CanSeek);
        Assert.Throws<NotSupportedException>(() => stream.Seek(0, SeekOrigin.Begin));
        Assert.Equal("m", (await SealedModel.OpenReadAsync(new MemoryStream(Seal.Bytes([1], Key, "m")), Key)).Header.ModelId);
    }

    [Fact]
    public async Task A_model_that_changes_while_being_sealed_is_reported()
    {
        var growing = new GrowingStream(Model);
        var e = await Assert.ThrowsAsync<IOException>(() => SealedModel.SealAsync(growing, new MemoryStream(), Key, new SealOptions { ModelId = "m", ModelVersion = "1" }));
        Assert.Contains("changed while being sealed", e.Message, StringComparison.Ordinal);
    }

    private sealed class CountingContext : SynchronizationContext
    {
        public int Posts;

        public override void Post(SendOrPostCallback d, object? state)
        {
            Interlocked.Increment(ref Posts);
            base.Post(d, state);
        }

        public override void Send(SendOrPostCallback d, object? state)
        {
            Interlocked.Increment(ref Posts);
            base.Send(d, state);
        }
    }

    private sealed class SynchronousProgress(Action<ModelSealProgress> report) : IProgress<ModelSealProgress>
    {
        public void Report(ModelSealProgress value) => report(value);
    }

    /// <summary>Reports the original length but yields one extra byte at the end, like a file appended to mid-read.</summary>
    private sealed class GrowingStream(byte[] data) : MemoryStream([.. data, 0x42])
    {
        public override long Length => data.Length;
    }
}
