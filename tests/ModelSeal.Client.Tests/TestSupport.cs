using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ModelSeal.Client.Tests;

/// <summary>A clock that is the system clock plus an offset the test moves forward. Timers stay real.</summary>
internal sealed class ManualTimeProvider : TimeProvider
{
    private long _offsetTicks;

    public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + TimeSpan.FromTicks(Interlocked.Read(ref _offsetTicks));

    public void Advance(TimeSpan by) => Interlocked.Add(ref _offsetTicks, by.Ticks);
}

/// <summary>A token source with a fixed token (for fake servers).</summary>
internal sealed class StaticTokenSource : ITokenSource
{
    public ValueTask<AccessToken> GetTokenAsync(CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(new AccessToken("header.payload.signature", "device-subject", DateTimeOffset.UtcNow.AddHours(1)));
}

/// <summary>A sealed sample model and its original bytes.</summary>
internal sealed record SealedSample(SealedModelHeader Header, byte[] Sealed, byte[] Original);

/// <summary>The sample model published on a <see cref="TestKeyServer"/>.</summary>
internal static class Publishing
{
    /// <summary>Creates a model and a version, and seals the sample model with the version's key.</summary>
    public static async Task<SealedSample> PublishSampleAsync(this TestKeyServer server, string modelId)
    {
        byte[] original = await File.ReadAllBytesAsync(RepoPaths.SampleModel, TestContext.Current.CancellationToken);
        PublishedModel published = await server.PublishAsync(modelId, original, TestContext.Current.CancellationToken);
        return new SealedSample(published.Header, published.Sealed, original);
    }
}

/// <summary>The client as an app would register it.</summary>
internal static class ClientServices
{
    public static ServiceProvider Create(string serverUrl, Action<ModelSealClientOptions>? configure = null, TimeProvider? time = null, ITokenSource? tokens = null, ILoggerProvider? logs = null)
    {
        var services = new ServiceCollection();
        if (logs is not null)
        {
            services.AddLogging(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(logs));
        }

        if (time is not null)
        {
            services.AddSingleton(time);
        }

        if (tokens is not null)
        {
            services.AddSingleton(tokens);
        }

        services.AddModelSeal(o =>
        {
            o.ServerUrl = serverUrl;
            configure?.Invoke(o);
        });
        return services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
    }

    public static ServiceProvider ForLicence(TestKeyServer server, TestLicence licence, TempDirectory directory, TimeProvider? time = null, ILoggerProvider? logs = null) =>
        Create(server.Url, o =>
        {
            o.LicenceId = licence.LicenceId;
            o.CredentialFile = licence.CredentialFile;
            o.DeviceKeyFile = directory.Sub("device/device.key");
            o.LeaseCacheDirectory = directory.Sub("leases");
        }, time, null, logs);
}

/// <summary>Captures every log line (to check that no secret is logged).</summary>
internal sealed class LogCapture : ILoggerProvider
{
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _lines = new();

    public IReadOnlyCollection<string> Lines => _lines;

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner._lines.Enqueue($"{category} {logLevel}: {formatter(state, exception)} {exception}");
    }
}
