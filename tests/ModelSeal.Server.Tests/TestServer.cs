using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using ModelSeal.Hpke;

namespace ModelSeal.Server.Tests;

/// <summary>
/// The real key server on 127.0.0.1 (an ephemeral port) in a temporary data directory, with a real HttpClient and
/// captured logs. Disposing stops it and checks that its logs hold none of the secrets the tests have seen.
/// </summary>
internal sealed class TestServer : IAsyncDisposable
{
    private readonly TempDirectory? _ownedDirectory;

    private TestServer(WebApplication app, ServerOptions options, LogCapture logs, TempDirectory? ownedDirectory)
    {
        App = app;
        Options = options;
        Logs = logs;
        _ownedDirectory = ownedDirectory;
        Address = new Uri(app.Urls.Single());
        Client = new HttpClient { BaseAddress = Address };
        AdminCredential = File.ReadAllText(Path.Combine(options.DataDirectory, "admin.credential")).Trim();
        Secrets.Add("admin credential", AdminCredential);
        Database = new TestDatabase(options);
    }

    /// <summary>The server's database, opened directly (as someone with access to it could).</summary>
    public TestDatabase Database { get; }

    public WebApplication App { get; }

    public ServerOptions Options { get; }

    public LogCapture Logs { get; }

    public Uri Address { get; }

    public HttpClient Client { get; }

    public string DataDirectory => Options.DataDirectory;

    public string AdminCredential { get; }

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

    // ---- HTTP ---------------------------------------------------------------------------------------------------

    public Task<Api> PostAsync(string path, object? body, string? token = null) =>
        SendAsync(HttpMethod.Post, path, body is null ? null : JsonContent(body), token);

    public Task<Api> GetAsync(string path, string? token = null) => SendAsync(HttpMethod.Get, path, null, token);

    public async Task<Api> SendAsync(HttpMethod method, string path, HttpContent? content, string? token)
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        using HttpResponseMessage response = await Client.SendAsync(request, TestContext.Current.CancellationToken);
        return await Api.ReadAsync(response);
    }

    public static StringContent JsonContent(object body) =>
        new(body as string ?? JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    // ---- flows --------------------------------------------------------------------------------------------------

    public async Task<string> AdminTokenAsync()
    {
        Api answer = await PostAsync("/v1/token", new { grantType = "admin", credential = AdminCredential });
        Assert.Equal(HttpStatusCode.OK, answer.Status);
        string token = answer.Json.GetProperty("accessToken").GetString()!;
        Secrets.Add("admin token", token);
        return token;
    }

    public async Task<string> LicenceTokenAsync(Licence licence)
    {
        Api answer = await PostAsync("/v1/token", new { grantType = "licence", licenceId = licence.Id, credential = licence.Credential });
        Assert.Equal(HttpStatusCode.OK, answer.Status);
        string token = answer.Json.GetProperty("accessToken").GetString()!;
        Secrets.Add("licence token", token);
        return token;
    }

    public async Task CreateModelAsync(string admin, string modelId)
    {
        Api answer = await PostAsync("/v1/admin/models", new { modelId }, admin);
        Assert.Equal(HttpStatusCode.Created, answer.Status);
    }

    /// <summary>Creates a version; returns the answer and the data key opened with the publisher's key.</summary>
    public async Task<(Release Answer, ModelKey Key)> CreateVersionAsync(string admin, string modelId, string? version = null, HpkeKeyPair? publisher = null)
    {
        using HpkeKeyPair ownPublisher = HpkeKeyPair.Generate();
        HpkeKeyPair key = publisher ?? ownPublisher;
        object body = version is null
            ? new { publisherPublicKey = Base64Url(key.PublicKey.Span) }
            : new { version, publisherPublicKey = Base64Url(key.PublicKey.Span) };
        Api answer = await PostAsync($"/v1/admin/models/{modelId}/versions", body, admin);
        Assert.Equal(HttpStatusCode.Created, answer.Status);
        Release release = Release.From(answer);
        return (release, release.Open(key, "admin"));
    }

    public async Task<Licence> CreateLicenceAsync(string admin, string subject, string[] models, int maxDevices = 5, DateTimeOffset? notBefore = null, DateTimeOffset? expiresAt = null)
    {
        var body = new Dictionary<string, object?> { ["subject"] = subject, ["models"] = models, ["maxDevices"] = maxDevices };
        if (notBefore is { } nb)
        {
            body["notBefore"] = nb.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);
        }

        if (expiresAt is { } ex)
        {
            body["expiresAt"] = ex.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);
        }

        Api answer = await PostAsync("/v1/admin/licences", body, admin);
        Assert.Equal(HttpStatusCode.Created, answer.Status);
        var licence = new Licence(answer.Json.GetProperty("licenceId").GetString()!, answer.Json.GetProperty("credential").GetString()!, subject);
        Secrets.Add("licence credential", licence.Credential);
        return licence;
    }

    public Task<Api> ReleaseAsync(string token, string modelId, string version, HpkeKeyPair device) =>
        PostAsync("/v1/keys/release", new { modelId, version, devicePublicKey = Base64Url(device.PublicKey.Span) }, token);

    /// <summary>Releases and opens the key; asserts 200.</summary>
    public async Task<(Release Answer, ModelKey Key)> ReleaseAndOpenAsync(string token, Licence licence, string modelId, string version, HpkeKeyPair device)
    {
        Api answer = await ReleaseAsync(token, modelId, version, device);
        Assert.True(answer.Status == HttpStatusCode.OK, $"Expected 200, got {(int)answer.Status}: {answer.Text}");
        Release release = Release.From(answer);
        return (release, release.Open(device, licence.Subject));
    }

    public static string Base64Url(ReadOnlySpan<byte> bytes) => System.Buffers.Text.Base64Url.EncodeToString(bytes);

    public static byte[] KeyBytes(ModelKey key)
    {
        byte[] bytes = new byte[ModelKey.SizeInBytes];
        key.Export(bytes);
        return bytes;
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

    private static string RepositoryRoot()
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
