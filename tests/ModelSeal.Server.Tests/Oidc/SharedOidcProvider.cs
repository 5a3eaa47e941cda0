namespace ModelSeal.Server.Tests.Oidc;

/// <summary>
/// One <see cref="OidcProvider"/> shared by the tests of a class (<c>IClassFixture&lt;SharedOidcProvider&gt;</c>),
/// started by the first test that asks for it, inside that test: without Node each test is skipped (or fails under
/// CI) on its own, where a fixture that failed to start would fail them all. Only for tests that leave the provider as
/// they found it; a test that rotates its keys, stops it or needs other accounts starts its own.
/// </summary>
public sealed class SharedOidcProvider : IAsyncDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private OidcProvider? _provider;

    /// <summary>The running provider, started on the first call.</summary>
    public async Task<OidcProvider> GetAsync()
    {
        await _gate.WaitAsync(TestContext.Current.CancellationToken);
        try
        {
            return _provider ??= await OidcProvider.StartAsync();
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_provider is not null)
        {
            await _provider.DisposeAsync();
        }

        _gate.Dispose();
    }
}
