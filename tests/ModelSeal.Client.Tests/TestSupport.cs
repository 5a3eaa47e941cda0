using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ModelSeal.Hpke;
using ModelSeal.Server;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;

namespace ModelSeal.Client.Tests;

/// <summary>A temporary directory, owner-only, deleted on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "modelseal-client-tests", Guid.NewGuid().ToString("N"));
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(Path);
        }
        else
        {
            Directory.CreateDirectory(Path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
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

internal static class Repo
{
    public static string Root
    {
        get
        {
            for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
            {
                if (File.Exists(System.IO.Path.Combine(d.FullName, "ModelSeal.slnx")))
                {
                    return d.FullName;
                }
            }

            throw new InvalidOperationException("ModelSeal.slnx not found above " + AppContext.BaseDirectory);
        }
    }

    public static string SampleModel => System.IO.Path.Combine(Root, "samples", "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx");

    public static void WriteOwnerOnly(string path, string content)
    {
        File.WriteAllText(path, content);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }
}

/// <summary>A sealed sample model and its original bytes.</summary>
internal sealed record SealedSample(SealedModelHeader Header, byte[] Sealed, byte[] Original);

/// <summary>A licence created on the key server, with its credential in an owner-only file.</summary>
internal sealed record TestLicence(string LicenceId, string CredentialFile);

/// <summary>The real key server on 127.0.0.1 in a temporary data directory, with admin helpers.</summary>
internal sealed class KeyServerEnvironment : IAsyncDisposable
{
    private bool _stopped;

    private KeyServerEnvironment(TempDirectory directory, WebApplication app, HttpClient admin)
    {
        Directory = directory;
        App = app;
        Url = app.Urls.Single();
        Admin = admin;
    }

    public TempDirectory Directory { get; }

    public WebApplication App { get; }

    public string Url { get; }

    public HttpClient Admin { get; }

    public static async Task<KeyServerEnvironment> StartAsync()
    {
        var directory = new TempDirectory();
        WebApplication app = ServerHost.Build(
            new ServerOptions { DataDirectory = directory.Sub("server"), Urls = "http://127.0.0.1:0" },
            logging => logging.ClearProviders());
        await app.StartAsync(TestContext.Current.CancellationToken);
        var admin = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };
        string credential = File.ReadAllText(System.IO.Path.Combine(directory.Sub("server"), "admin.credential")).Trim();
        JsonElement token = await PostAsync(admin, "/v1/token", new { grantType = "admin", credential }, HttpStatusCode.OK);
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token.GetProperty("accessToken").GetString());
        return new KeyServerEnvironment(directory, app, admin);
    }

    /// <summary>Creates a model and a version, and seals the sample model with the version's key.</summary>
    public async Task<SealedSample> PublishSampleAsync(string modelId)
    {
        await PostAsync(Admin, "/v1/admin/models", new { modelId }, HttpStatusCode.Created);
        using HpkeKeyPair publisher = HpkeKeyPair.Generate();
        JsonElement v = await PostAsync(Admin, $"/v1/admin/models/{modelId}/versions", new { publisherPublicKey = System.Buffers.Text.Base64Url.EncodeToString(publisher.PublicKey.Encoded.Span) }, HttpStatusCode.Created);
        string version = v.GetProperty("version").GetString()!;
        using ModelKey key = KeyRelease.Open(
            publisher,
            System.Buffers.Text.Base64Url.DecodeFromChars(v.GetProperty("enc").GetString()),
            System.Buffers.Text.Base64Url.DecodeFromChars(v.GetProperty("sealedKey").GetString()),
            modelId,
            version,
            v.GetProperty("keyId").GetString()!,
            "admin",
            DateTimeOffset.Parse(v.GetProperty("leaseExpiresAt").GetString()!, System.Globalization.CultureInfo.InvariantCulture));

        byte[] original = await File.ReadAllBytesAsync(Repo.SampleModel, TestContext.Current.CancellationToken);
        using var sealedStream = new MemoryStream();
        SealedModelHeader header = await SealedModel.SealAsync(new MemoryStream(original), sealedStream, key, new SealOptions { ModelId = modelId, ModelVersion = version }, cancellationToken: TestContext.Current.CancellationToken);
        return new SealedSample(header, sealedStream.ToArray(), original);
    }

    public async Task<TestLicence> CreateLicenceAsync(string subject, string[] models, int maxDevices = 5)
    {
        JsonElement licence = await PostAsync(Admin, "/v1/admin/licences", new { subject, models, maxDevices }, HttpStatusCode.Created);
        string file = Directory.Sub($"licence-{Guid.NewGuid():N}.credential");
        Repo.WriteOwnerOnly(file, licence.GetProperty("credential").GetString()!);
        return new TestLicence(licence.GetProperty("licenceId").GetString()!, file);
    }

    public Task RevokeAsync(string licenceId) => PostAsync(Admin, $"/v1/admin/licences/{licenceId}/revoke", new { }, HttpStatusCode.OK);

    public async Task StopAsync()
    {
        if (!_stopped)
        {
            _stopped = true;
            await App.StopAsync(CancellationToken.None);
            await App.DisposeAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        Admin.Dispose();
        Directory.Dispose();
    }

    private static async Task<JsonElement> PostAsync(HttpClient client, string path, object body, HttpStatusCode expected)
    {
        using HttpResponseMessage response = await client.PostAsJsonAsync(path, body, TestContext.Current.CancellationToken);
        string text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.StatusCode == expected, $"{path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
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

    public static ServiceProvider ForLicence(KeyServerEnvironment server, TestLicence licence, TempDirectory directory, TimeProvider? time = null, ILoggerProvider? logs = null) =>
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
