using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ModelSeal.Client.Tests;

/// <summary>A misbehaving key server: each fault ends quickly in a typed error, with a bounded number of attempts.</summary>
public sealed class FaultTests
{
    private static readonly SealedModelHeader Header =
        SealedModelHeader.Create("classifier", "1", "classifier.1.k0000001", ModelContentType.Onnx, 1000, null);

    public enum Fault
    {
        Slow,
        ServerError,
        RateLimited,
        Forbidden,
        Unauthorized,
    }

    [Fact]
    public async Task A_closed_port_is_ServerUnavailable_quickly()
    {
        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        await using ServiceProvider services = ClientServices.Create($"http://127.0.0.1:{port}/", tokens: new StaticTokenSource());
        var watch = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => services.GetRequiredService<IModelKeySource>().GetKeyAsync(Header, TestContext.Current.CancellationToken).AsTask());
        watch.Stop();

        Assert.Equal(ModelKeyUnavailableReason.ServerUnavailable, e.Reason);
        Assert.InRange(e.Attempts, 2, 4);
        Assert.Contains("could not be reached", e.Message, StringComparison.Ordinal);
        Assert.Contains($"after {e.Attempts} attempts", e.Message, StringComparison.Ordinal);
        // Bounded by the total timeout (8 s), with room for a loaded machine; an unbounded retry loop would run far longer.
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"took {watch.Elapsed}");
    }

    [Theory]
    [InlineData(Fault.Slow, "did not answer in time")]
    [InlineData(Fault.ServerError, "answered 500")]
    [InlineData(Fault.RateLimited, "rate-limiting")]
    public async Task Transient_faults_end_in_ServerUnavailable_with_bounded_attempts(Fault fault, string why)
    {
        await using FakeServer server = await FakeServer.StartAsync(fault);
        await using ServiceProvider services = ClientServices.Create(server.Url, tokens: new StaticTokenSource());
        var watch = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => services.GetRequiredService<IModelKeySource>().GetKeyAsync(Header, TestContext.Current.CancellationToken).AsTask());
        watch.Stop();

        Assert.Equal(ModelKeyUnavailableReason.ServerUnavailable, e.Reason);
        Assert.Contains(why, e.Message, StringComparison.Ordinal);
        // Bounded by the total timeout (8 s), with room for a loaded machine; an unbounded retry loop would run far longer.
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"took {watch.Elapsed}");
        Assert.InRange(server.Releases, 2, 4); // retried, but no retry storm
    }

    [Fact]
    public async Task A_refusal_is_not_retried()
    {
        await using FakeServer server = await FakeServer.StartAsync(Fault.Forbidden);

        // Attempt timeouts far above any answer time: on a loaded machine a timed-out first attempt would be retried
        // (rightly), and this test is about the refusal.
        await using ServiceProvider services = ClientServices.Create(server.Url, o => (o.AttemptTimeout, o.TotalTimeout) = (TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(2)), tokens: new StaticTokenSource());
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => services.GetRequiredService<IModelKeySource>().GetKeyAsync(Header, TestContext.Current.CancellationToken).AsTask());

        Assert.Equal(ModelKeyUnavailableReason.DeviceLimit, e.Reason);
        Assert.Equal(1, server.Releases);
        Assert.Equal(1, e.Attempts);
    }

    [Fact]
    public async Task A_stale_token_is_renewed_once_and_a_second_401_is_Unauthorized()
    {
        await using FakeServer server = await FakeServer.StartAsync(Fault.Unauthorized);
        var tokens = new RenewingTokenSource();
        await using ServiceProvider services = ClientServices.Create(server.Url, tokens: tokens);
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => services.GetRequiredService<IModelKeySource>().GetKeyAsync(Header, TestContext.Current.CancellationToken).AsTask());

        Assert.Equal(ModelKeyUnavailableReason.Unauthorized, e.Reason);
        Assert.Equal(1, tokens.Invalidations);
        Assert.Equal(2, server.Releases);
    }

    [Theory]
    [InlineData(Fault.ServerError, true)]
    [InlineData(Fault.RateLimited, false)]
    public async Task The_circuit_opens_on_server_errors_but_not_on_429(Fault fault, bool opens)
    {
        await using FakeServer server = await FakeServer.StartAsync(fault);
        await using ServiceProvider services = ClientServices.Create(server.Url, o => o.MaxRetryAttempts = 0, tokens: new StaticTokenSource());
        IModelKeySource source = services.GetRequiredService<IModelKeySource>();
        ModelKeyUnavailableException? last = null;
        for (int i = 0; i < 15; i++)
        {
            last = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(Header, TestContext.Current.CancellationToken).AsTask());
            Assert.Equal(ModelKeyUnavailableReason.ServerUnavailable, last.Reason);
        }

        Assert.Equal(opens ? 10 : 15, server.Releases); // minimum throughput 10, then every call fails fast
        Assert.Equal(opens, last!.Message.Contains("circuit open", StringComparison.Ordinal));
    }

    [Fact]
    public void Retry_after_is_capped()
    {
        using var response = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        response.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(60));
        Assert.Equal(TimeSpan.FromSeconds(2), ModelSealServiceCollectionExtensions.RetryAfter(response, TimeProvider.System, TimeSpan.FromSeconds(2)));
        response.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromMilliseconds(500));
        Assert.Equal(TimeSpan.FromMilliseconds(500), ModelSealServiceCollectionExtensions.RetryAfter(response, TimeProvider.System, TimeSpan.FromSeconds(2)));
        response.Headers.RetryAfter = null;
        Assert.Null(ModelSealServiceCollectionExtensions.RetryAfter(response, TimeProvider.System, TimeSpan.FromSeconds(2)));
    }

    /// <summary>A plain Kestrel app on 127.0.0.1 that fails key releases in one way and counts them.</summary>
    private sealed class FakeServer : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stopping = new();
        private int _releases;

        private FakeServer(Fault fault)
        {
            FaultMode = fault;
        }

        public Fault FaultMode { get; }

        public int Releases => Volatile.Read(ref _releases);

        public string Url { get; private set; } = string.Empty;

        private WebApplication? App { get; set; }

        public static async Task<FakeServer> StartAsync(Fault fault)
        {
            var server = new FakeServer(fault);
            WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            WebApplication app = builder.Build();
            app.MapPost("/v1/keys/release", (Delegate)server.ReleaseAsync);
            await app.StartAsync(TestContext.Current.CancellationToken);
            server.App = app;
            server.Url = app.Urls.Single() + "/";
            return server;
        }

        public async ValueTask DisposeAsync()
        {
            await _stopping.CancelAsync();
            await App!.StopAsync(CancellationToken.None);
            await App.DisposeAsync();
            _stopping.Dispose();
        }

        private async Task<IResult> ReleaseAsync(HttpContext http)
        {
            Interlocked.Increment(ref _releases);
            switch (FaultMode)
            {
                case Fault.Slow:
                    using (var linked = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, _stopping.Token))
                    {
                        try
                        {
                            await Task.Delay(TimeSpan.FromSeconds(30), linked.Token);
                        }
                        catch (OperationCanceledException)
                        {
                        }
                    }

                    return Results.StatusCode(500);
                case Fault.RateLimited:
                    http.Response.Headers.RetryAfter = "60";
                    return Results.Problem(statusCode: 429, type: "https://modelseal.dev/problems/rate-limited", detail: "Slow down.");
                case Fault.Unauthorized:
                    return Results.Problem(statusCode: 401, type: "https://modelseal.dev/problems/unauthorized");
                case Fault.Forbidden:
                    return Results.Problem(statusCode: 403, type: "https://modelseal.dev/problems/device-limit", detail: "The licence allows 1 device(s) and all are registered.");
                default:
                    return Results.Problem(statusCode: 500, type: "https://modelseal.dev/problems/internal-error");
            }
        }
    }

    private sealed class RenewingTokenSource : ITokenSource
    {
        private int _invalidations;

        public int Invalidations => Volatile.Read(ref _invalidations);

        public ValueTask<AccessToken> GetTokenAsync(CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(new AccessToken($"h.p{Invalidations}.s", "device-subject", DateTimeOffset.UtcNow.AddHours(1)));

        public void Invalidate() => Interlocked.Increment(ref _invalidations);
    }
}
