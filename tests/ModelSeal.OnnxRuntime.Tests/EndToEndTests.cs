using Microsoft.Extensions.DependencyInjection;
using Microsoft.ML.OnnxRuntime;

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
    private TestKeyServer? _server;
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
        _server = await TestKeyServer.StartAsync();
        TestLicence licence = await _server.CreateLicenceAsync("e2e-app", AllModels, maxDevices: 1);
        _client = new ServiceCollection()
            .AddLogging()
            .AddModelSeal(o =>
            {
                o.ServerUrl = _server.Url;
                o.LicenceId = licence.LicenceId;
                o.CredentialFile = licence.CredentialFile;
            })
            .BuildServiceProvider();
    }

    public async ValueTask DisposeAsync()
    {
        if (_client is not null)
        {
            await _client.DisposeAsync();
        }

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
        PublishedModel published = await _server!.PublishAsync(modelId, plaintext);
        string path = _dir.Sub(modelId + ".mseal");
        await File.WriteAllBytesAsync(path, published.Sealed);
        return path;
    }
}
