using System.Text.Json.Nodes;
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

/// <summary>
/// Sits between the client and the server: <see cref="Release"/> (and <see cref="Token"/>) see each request body and
/// the server's answer and may replace it (null: pass the real answer on).
/// </summary>
internal sealed class Tamper : DelegatingHandler
{
    public Func<JsonNode, string, HttpResponseMessage?>? Release { get; set; }

    public Func<JsonNode, string, HttpResponseMessage?>? Token { get; set; }

    public int Rewritten { get; private set; }

    /// <summary>An answer with this status and body.</summary>
    public static HttpResponseMessage Json(System.Net.HttpStatusCode status, string body, string mediaType = "application/json") =>
        new(status) { Content = new StringContent(body, System.Text.Encoding.UTF8, mediaType) };

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        string path = request.RequestUri!.AbsolutePath;
        Func<JsonNode, string, HttpResponseMessage?>? rewrite = path.EndsWith("/v1/keys/release", StringComparison.Ordinal) ? Release
            : path.EndsWith("/v1/token", StringComparison.Ordinal) ? Token
            : null;
        JsonNode? body = rewrite is null || request.Content is null ? null : JsonNode.Parse(await request.Content.ReadAsStringAsync(cancellationToken));
        HttpResponseMessage response = await base.SendAsync(request, cancellationToken);
        if (rewrite is null || body is null)
        {
            return response;
        }

        string answer = await response.Content.ReadAsStringAsync(cancellationToken);
        HttpResponseMessage? replaced = rewrite(body, answer);
        if (replaced is null)
        {
            return response;
        }

        response.Dispose();
        Rewritten++;
        return replaced;
    }
}
