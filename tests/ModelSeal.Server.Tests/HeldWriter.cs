using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Tests;

/// <summary>Holds the store's writer inside a first write, so that everything queued meanwhile is taken as one batch.</summary>
internal sealed class HeldWriter : IAsyncDisposable
{
    private readonly ManualResetEventSlim _proceed = new();
    private Task<int> _blocker = Task.FromResult(0);

    public static HeldWriter Hold(Store store)
    {
        var held = new HeldWriter();
        using var entered = new ManualResetEventSlim();
        held._blocker = store.WriteAsync(_ =>
        {
            entered.Set();
            held._proceed.Wait(TestContext.Current.CancellationToken);
            return 0;
        }, TestContext.Current.CancellationToken);
        Assert.True(entered.Wait(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken));
        return held;
    }

    /// <summary>Lets the writer go on and waits for the holding write to finish.</summary>
    public async Task ReleaseAsync()
    {
        _proceed.Set();
        await _blocker;
    }

    /// <summary>Never leaves the writer blocked (disposing the store waits for it).</summary>
    public async ValueTask DisposeAsync()
    {
        _proceed.Set();
        await ((Task)_blocker).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _proceed.Dispose();
    }
}
