using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using ModelSeal.Hpke;
using ModelSeal.Server.Files;

namespace ModelSeal.OnnxRuntime.Tests;

/// <summary>
/// The whole path over real loopback HTTP: key server (Kestrel, SQLite) → client key source (token, HPKE key release)
/// → sealed model → ONNX Runtime session, compared bit for bit with the plaintext model, for the sample classifier and
/// the 4.7 MB detector, in copy mode (.onnx) and zero-copy mode (.ort made from the .onnx in the test).
/// </summary>
public sealed class EndToEndTests : IAsyncLifetime
{
    private static readonly string[] AllModels = ["*"];
    private readonly TempDirectory _dir = new();
    private Microsoft.AspNetCore.Builder.WebApplication? _server;
    private HttpClient? _admin;
    private ServiceProvider? _client;

    public static TheoryData<string, bool> Cases() => new()
    {
        { "classifier", false },
        { "classifier", true },
        { "detector", false },
        { "detector", true },
    };

    public async ValueTask InitializeAsync()
    {
        string data = Path.Combine(_dir.Path, "server");
        _server = ModelSeal.Server.ServerHost.Build(new ModelSeal.Server.Configuration.ServerOptions { DataDirectory = data, Urls = "http://127.0.0.1:0" }, logging => logging.ClearProviders());
        await _server.StartAsync();
        _admin = new HttpClient { BaseAddress = new Uri(_server.Urls.Single()) };
        JsonElement token = await PostAsync("/v1/token", new { grantType = "admin", credential = File.ReadAllText(Path.Combine(data, "admin.credential")).Trim() });
        _admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token.GetProperty("accessToken").GetString());

        JsonElement licence = await PostAsync("/v1/admin/licences", new { subject = "e2e-app", models = AllModels, maxDevices = 1 });
        string credentialFile = Path.Combine(_dir.Path, "licence.credential");
        File.WriteAllText(credentialFile, licence.GetProperty("credential").GetString());
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(credentialFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        _client = new ServiceCollection()
            .AddLogging()
            .AddModelSeal(o =>
            {
                o.ServerUrl = _server.Urls.Single();
                o.LicenceId = licence.GetProperty("licenceId").GetString();
                o.CredentialFile = credentialFile;
            })
            .BuildServiceProvider();
    }

    public async ValueTask DisposeAsync()
    {
        if (_client is not null)
        {
            await _client.DisposeAsync();
        }

        _admin?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _dir.Dispose();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Sealed_sessions_over_http_give_the_plaintext_models_outputs(string model, bool ort)
    {
        byte[] plaintext = ort ? TestSupport.ConvertToOrt(TestSupport.ModelPath(model), _dir.Path) : File.ReadAllBytes(TestSupport.ModelPath(model));
        string modelId = model + (ort ? "-ort" : "-onnx");
        string sealedPath = await PublishAsync(modelId, plaintext);

        using SealedOrtSession loaded = await SealedInferenceSession.LoadAsync(sealedPath, _client!.GetRequiredService<IModelKeySource>());
        Assert.Equal(ort ? SessionLoadMode.ZeroCopy : SessionLoadMode.Copy, loaded.Mode);

        using var referenceOptions = new SessionOptions();
        if (ort)
        {
            referenceOptions.AddSessionConfigEntry("session.disable_prepacking", "1"); // as zero-copy mode requires
        }

        using var reference = new InferenceSession(plaintext, referenceOptions);
        for (int seed = 1; seed <= 3; seed++)
        {
            List<NamedOnnxValue> inputs = TestSupport.Inputs(reference, seed);
            TestSupport.AssertBitwiseEqual(TestSupport.Run(reference, inputs), TestSupport.Run(loaded.Session, inputs));
        }
    }

    /// <summary>As the publisher: model, version (key sealed to a publisher key), sealed file.</summary>
    private async Task<string> PublishAsync(string modelId, byte[] plaintext)
    {
        await PostAsync("/v1/admin/models", new { modelId });
        using HpkeKeyPair publisher = HpkeKeyPair.Generate();
        JsonElement v = await PostAsync($"/v1/admin/models/{modelId}/versions", new { publisherPublicKey = System.Buffers.Text.Base64Url.EncodeToString(publisher.PublicKey.Encoded.Span) });
        using ModelKey key = KeyRelease.Open(
            publisher,
            System.Buffers.Text.Base64Url.DecodeFromChars(v.GetProperty("enc").GetString()),
            System.Buffers.Text.Base64Url.DecodeFromChars(v.GetProperty("sealedKey").GetString()),
            modelId,
            v.GetProperty("version").GetString()!,
            v.GetProperty("keyId").GetString()!,
            "admin",
            v.GetProperty("leaseExpiresAt").GetDateTimeOffset());
        string path = Path.Combine(_dir.Path, modelId + ".mseal");
        await using FileStream output = File.Create(path);
        await SealedModel.SealAsync(new MemoryStream(plaintext), output, key, new SealOptions { ModelId = modelId, ModelVersion = v.GetProperty("version").GetString()! });
        return path;
    }

    private async Task<JsonElement> PostAsync(string path, object body)
    {
        using HttpResponseMessage response = await _admin!.PostAsJsonAsync(path, body);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.Created, $"{path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }
}
