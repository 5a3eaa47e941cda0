using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;

namespace ModelSeal.Server.Tests;

/// <summary>
/// The real key server on 127.0.0.1 (an ephemeral port) in a temporary data directory (<see cref="TestKeyServer"/>),
/// on the backends <see cref="TestBackends"/> selects, with a real HttpClient and captured logs. Disposing stops it and
/// checks that its logs hold none of the secrets the tests have seen.
/// </summary>
internal sealed class TestServer : ServerClient, IAsyncDisposable
{
    private readonly TestKeyServer _server;

    private TestServer(TestKeyServer server, LogCapture logs)
        : base(server.Address, server.AdminCredentialFile)
    {
        _server = server;
        Logs = logs;
        Database = new TestDatabase(server.Options);
    }

    /// <summary>The server's database, opened directly (as someone with access to it could).</summary>
    public TestDatabase Database { get; }

    public WebApplication App => _server.App;

    public ServerOptions Options => _server.Options;

    public LogCapture Logs { get; }

    public string DataDirectory => Options.DataDirectory;

    public DateTimeOffset Now => Options.Time.GetUtcNow();

    /// <summary>Rate limits far above what a burst test sends (every client here is 127.0.0.1, with few subjects).</summary>
    public static void WithoutRateLimits(ServerOptions options)
    {
        options.ReleasesPerMinutePerSubject = 100_000;
        options.RequestsPerMinutePerClient = 100_000;
    }

    /// <summary>Starts a server; in a new temporary directory unless <paramref name="dataDirectory"/> is given.</summary>
    public static async Task<TestServer> StartAsync(Action<ServerOptions>? configure = null, string? dataDirectory = null)
    {
        var logs = new LogCapture();
        TestKeyServer server = await TestKeyServer.StartAsync(
            options =>
            {
                // One audit record per refusal, written at once, as most tests count them; the coalescing tests set a window.
                options.Audit.RefusalWindow = TimeSpan.Zero;
                configure?.Invoke(options);
                TestBackends.Apply(options);
            },
            dataDirectory,
            logging =>
            {
                logging.ClearProviders();
                logging.SetMinimumLevel(LogLevel.Debug);
                logging.AddProvider(logs);
            },
            TestContext.Current.CancellationToken);
        return new TestServer(server, logs);
    }

    public async ValueTask DisposeAsync()
    {
        await _server.StopAsync();
        Client.Dispose();
        if (_server.OwnsDataDirectory)
        {
            Database.Drop();
        }

        await _server.DisposeAsync();
        List<string> leaked = Secrets.FoundIn(Logs.Lines);
        Assert.True(leaked.Count == 0, $"The server logged secrets: {string.Join(", ", leaked)}.");
    }
}

/// <summary>A licence and its credential.</summary>
internal sealed record Licence(string Id, string Credential, string Subject);

/// <summary>A status, the raw body, its JSON (when it is JSON) and the headers.</summary>
internal sealed record Api(HttpStatusCode Status, string Text, JsonElement Json, string? ContentType, HttpResponseHeaders Headers)
{
    public static async Task<Api> ReadAsync(HttpResponseMessage response)
    {
        string text = await response.Content.ReadAsStringAsync();
        JsonElement json = default;
        if (text.Length > 0 && (text[0] == '{' || text[0] == '['))
        {
            json = JsonDocument.Parse(text).RootElement.Clone();
        }

        return new Api(response.StatusCode, text, json, response.Content.Headers.ContentType?.MediaType, response.Headers);
    }

    /// <summary>Asserts the status, showing the body when it differs.</summary>
    public void AssertStatus(HttpStatusCode status) => Assert.True(Status == status, $"Expected {(int)status}, got {(int)Status}: {Text}");

    /// <summary>Asserts a ProblemDetails answer with this status and code.</summary>
    public void AssertProblem(HttpStatusCode status, string code)
    {
        Assert.True(Status == status, $"Expected {(int)status} {code}, got {(int)Status}: {Text}");
        Assert.Equal("application/problem+json", ContentType);
        Assert.Equal($"https://modelseal.dev/problems/{code}", Json.GetProperty("type").GetString());
        Assert.Equal((int)status, Json.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(Json.GetProperty("title").GetString()));
        Assert.DoesNotContain("   at ", Text, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", Text, StringComparison.Ordinal);
    }
}

/// <summary>A release answer (docs/protocol.md section 2).</summary>
internal sealed record Release(string ModelId, string Version, string KeyId, string Suite, byte[] Enc, byte[] SealedKey, string LeaseText, DateTimeOffset LeaseExpiresAt)
{
    public static Release From(Api answer)
    {
        JsonElement json = answer.Json;
        string lease = json.GetProperty("leaseExpiresAt").GetString()!;
        return new Release(
            json.GetProperty("modelId").GetString()!,
            json.GetProperty("version").GetString()!,
            json.GetProperty("keyId").GetString()!,
            json.GetProperty("suite").GetString()!,
            System.Buffers.Text.Base64Url.DecodeFromChars(json.GetProperty("enc").GetString()!),
            System.Buffers.Text.Base64Url.DecodeFromChars(json.GetProperty("sealedKey").GetString()!),
            lease,
            DateTimeOffset.Parse(lease, System.Globalization.CultureInfo.InvariantCulture));
    }

    public ModelKey Open(HpkeKeyPair recipient, string subject)
    {
        ModelKey key = KeyRelease.Open(recipient, Enc, SealedKey, ModelId, Version, KeyId, subject, LeaseExpiresAt);
        Secrets.AddKey(key);
        return key;
    }
}

/// <summary>
/// A clock the tests set. Its timers run on it: moving the clock runs, on the caller's thread, the callback of every
/// timer that has become due (a periodic timer once per move, however many periods passed), so no test waits for time.
/// </summary>
internal sealed class ManualTime(DateTimeOffset now) : TimeProvider
{
    private readonly List<Timer> _timers = [];
    private DateTimeOffset _now = now;

    public DateTimeOffset Now
    {
        get
        {
            lock (_timers)
            {
                return _now;
            }
        }

        set
        {
            List<Timer> due;
            lock (_timers)
            {
                _now = value;
                due = _timers.Where(t => t.Due <= value).ToList();
                foreach (Timer timer in due)
                {
                    timer.Due = timer.Period > TimeSpan.Zero ? value + timer.Period : DateTimeOffset.MaxValue;
                }
            }

            foreach (Timer timer in due)
            {
                timer.Callback(timer.State);
            }
        }
    }

    public override DateTimeOffset GetUtcNow() => Now;

    public void Advance(TimeSpan by) => Now += by;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new Timer(this, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    private sealed class Timer(ManualTime time, TimerCallback callback, object? state) : ITimer
    {
        public TimerCallback Callback { get; } = callback;

        public object? State { get; } = state;

        public DateTimeOffset Due { get; set; } = DateTimeOffset.MaxValue;

        public TimeSpan Period { get; private set; }

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            lock (time._timers)
            {
                Due = dueTime == Timeout.InfiniteTimeSpan ? DateTimeOffset.MaxValue : time._now + dueTime;
                Period = period == Timeout.InfiniteTimeSpan ? TimeSpan.Zero : period;
                if (!time._timers.Contains(this))
                {
                    time._timers.Add(this);
                }
            }

            return true;
        }

        public void Dispose()
        {
            lock (time._timers)
            {
                time._timers.Remove(this);
            }
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
