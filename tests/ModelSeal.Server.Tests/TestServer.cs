using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;

namespace ModelSeal.Server.Tests;

/// <summary>
/// The real key server on 127.0.0.1 (an ephemeral port) in a temporary data directory, with a real HttpClient and
/// captured logs. Disposing stops it and checks that its logs hold none of the secrets the tests have seen.
/// </summary>
internal sealed class TestServer : ServerClient, IAsyncDisposable
{
    private readonly TempDirectory? _ownedDirectory;

    private TestServer(WebApplication app, ServerOptions options, LogCapture logs, TempDirectory? ownedDirectory)
        : base(new Uri(app.Urls.Single()), options.DataDirectory)
    {
        App = app;
        Options = options;
        Logs = logs;
        _ownedDirectory = ownedDirectory;
        Database = new TestDatabase(options);
    }

    /// <summary>The server's database, opened directly (as someone with access to it could).</summary>
    public TestDatabase Database { get; }

    public WebApplication App { get; }

    public ServerOptions Options { get; }

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
        TempDirectory? owned = dataDirectory is null ? new TempDirectory() : null;
        var options = new ServerOptions { DataDirectory = dataDirectory ?? owned!.Sub("data"), Urls = "http://127.0.0.1:0" };
        configure?.Invoke(options);
        TestBackends.Apply(options);
        var logs = new LogCapture();
        WebApplication app = ServerHost.Build(options, logging =>
        {
            logging.ClearProviders();
            logging.SetMinimumLevel(LogLevel.Debug);
            logging.AddProvider(logs);
        });
        await app.StartAsync(TestContext.Current.CancellationToken);
        return new TestServer(app, options, logs, owned);
    }

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync(CancellationToken.None);
        await App.DisposeAsync();
        Client.Dispose();
        if (_ownedDirectory is not null)
        {
            Database.Drop();
            _ownedDirectory.Dispose();
        }

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

/// <summary>A temporary directory (owner-only), deleted on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = Directory.CreateTempSubdirectory("modelseal-server-tests-").FullName;
    }

    public string Path { get; }

    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>A clock the tests set.</summary>
internal sealed class ManualTime(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public override DateTimeOffset GetUtcNow() => Now;

    public void Advance(TimeSpan by) => Now += by;
}

/// <summary>Test data files found by walking up to the repository root.</summary>
internal static class TestFiles
{
    public static string SampleModel => Path.Combine(RepositoryRoot(), "samples", "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx");

    public static string RepositoryRoot()
    {
        for (DirectoryInfo? directory = new(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "ModelSeal.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("ModelSeal.slnx not found above " + AppContext.BaseDirectory);
    }
}
