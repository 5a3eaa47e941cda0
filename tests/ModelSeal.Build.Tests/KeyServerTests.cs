using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Build.Utilities;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Hpke;
using Task = System.Threading.Tasks.Task;

namespace ModelSeal.Build.Tests;

/// <summary>The sealing task against the real key server on 127.0.0.1 (each model gets a new version there).</summary>
public sealed class KeyServerTests : IAsyncLifetime
{
    private const string Variable = "MODELSEAL_TEST_ADMIN_CREDENTIAL";
    private static readonly string[] Models = ["classifier"];
    private readonly TempDirectory _directory = new();
    private readonly RecordingBuildEngine _engine = new();
    private TestKeyServer? _server;
    private string _credential = string.Empty;

    private string Url => _server!.Url;

    public async ValueTask InitializeAsync()
    {
        _server = await TestKeyServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        _credential = _server.AdminCredential;
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _directory.Dispose();
    }

    private SealModels NewTask(string? version, string sealedName = "classifier.onnx.mseal", string? credential = null, string? variable = Variable)
    {
        var item = new TaskItem(RepoPaths.SampleModel);
        item.SetMetadata("ModelId", "classifier");
        if (version is not null)
        {
            item.SetMetadata("ModelVersion", version);
        }

        item.SetMetadata("SealedPath", _directory.Sub("out", sealedName));
        return new SealModels
        {
            BuildEngine = _engine,
            Models = [item],
            KeyServer = Url,
            AdminCredentialVariable = variable,
            GetEnvironmentVariable = name => name == Variable ? credential ?? _credential : null,
        };
    }

    [Fact]
    public async Task Seals_with_new_server_numbered_versions_whose_keys_a_licensed_device_gets()
    {
        Assert.True(NewTask(version: null, "v1.mseal").Execute(), _engine.AllText);
        Assert.True(NewTask(version: null, "v2.mseal").Execute(), _engine.AllText);
        Assert.Empty(_engine.Errors);

        SealedModelHeader first = await ReadHeaderAsync("v1.mseal");
        SealedModelHeader second = await ReadHeaderAsync("v2.mseal");
        Assert.Equal(("classifier", "1"), (first.ModelId, first.ModelVersion));
        Assert.Equal(("classifier", "2"), (second.ModelId, second.ModelVersion));
        Assert.NotEqual(first.KeyId, second.KeyId);
        Assert.DoesNotContain(_credential, _engine.AllText, StringComparison.Ordinal);

        // A device licensed for the model gets version 2's key from the server and opens the file with it.
        TestLicence licence = await _server!.CreateLicenceAsync("device-test", Models, maxDevices: 1, TestContext.Current.CancellationToken);
        await using ServiceProvider services = new ServiceCollection()
            .AddModelSeal(o =>
            {
                o.ServerUrl = Url;
                o.LicenceId = licence.LicenceId;
                o.CredentialFile = licence.CredentialFile;
            })
            .BuildServiceProvider();
        using ModelKey key = await services.GetRequiredService<IModelKeySource>().GetKeyAsync(second, TestContext.Current.CancellationToken);
        await using FileStream file = File.OpenRead(_directory.Sub("out", "v2.mseal"));
        using DecryptedModel model = await SealedModel.DecryptAsync(file, key, cancellationToken: TestContext.Current.CancellationToken);
        Assert.True(model.Span.SequenceEqual(File.ReadAllBytes(RepoPaths.SampleModel)));
    }

    [Fact]
    public void An_explicit_version_that_exists_is_MSEAL007_with_the_way_out()
    {
        Assert.True(NewTask(version: "7", "first.mseal").Execute(), _engine.AllText);
        Assert.False(NewTask(version: "7", "again.mseal").Execute());
        var error = Assert.Single(_engine.Errors);
        Assert.Equal("MSEAL007", error.Code);
        Assert.Contains("exists already", error.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(_directory.Sub("out", "again.mseal")));
    }

    [Fact]
    public void A_wrong_admin_credential_is_MSEAL007_and_never_logged()
    {
        const string wrong = "wrong-credential-0123456789";
        Assert.False(NewTask(version: "1", credential: wrong).Execute());
        var error = Assert.Single(_engine.Errors);
        Assert.Equal("MSEAL007", error.Code);
        Assert.Contains("401", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(wrong, _engine.AllText, StringComparison.Ordinal);
    }

    [Fact]
    public void No_credential_variable_or_an_unset_one_is_MSEAL006()
    {
        Assert.False(NewTask(version: "1", variable: null).Execute());
        Assert.False(NewTask(version: "1", variable: "MODELSEAL_TEST_UNSET_VARIABLE").Execute());
        Assert.Equal(["MSEAL006", "MSEAL006"], _engine.Errors.Select(e => e.Code));
        Assert.Contains("MODELSEAL_TEST_UNSET_VARIABLE", _engine.Errors[1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unreachable_server_is_MSEAL007()
    {
        SealModels task = NewTask(version: "1");
        task.KeyServer = "http://127.0.0.1:1/";
        Assert.False(task.Execute());
        Assert.Equal("MSEAL007", Assert.Single(_engine.Errors).Code);
        Assert.Contains("cannot reach", _engine.Errors[0].Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_model_is_created_audited_as_encrypt_with_a_server_does()
    {
        // The same expectation as ModelSeal.Cli.Tests.ServerVerbTests: both publish through one admin client.
        Assert.True(NewTask(version: null).Execute(), _engine.AllText);
        SealedModelHeader header = await ReadHeaderAsync("classifier.onnx.mseal");
        Assert.Equal(("classifier", "1"), (header.ModelId, header.ModelVersion));

        using HttpClient admin = await _server!.AdminAsync(TestContext.Current.CancellationToken);
        JsonElement page = await admin.GetFromJsonAsync<JsonElement>("/v1/admin/audit", TestContext.Current.CancellationToken);
        var changes = page.GetProperty("items").EnumerateArray()
            .Where(r => r.GetProperty("modelId").ValueKind == JsonValueKind.String)
            .Select(r => (r.GetProperty("event").GetString(), r.GetProperty("modelId").GetString(), r.GetProperty("version").GetString()))
            .ToList();
        Assert.Equal([("model.created", "classifier", null), ("version.created", "classifier", "1")], changes);
    }

    [Fact]
    public void Plain_http_to_a_host_that_is_not_loopback_is_MSEAL006_unless_allowed()
    {
        // 0.0.0.0 is not a loopback address, but connecting to it reaches this host, where port 1 refuses at once.
        SealModels task = NewTask(version: "1");
        task.KeyServer = "http://0.0.0.0:1/";
        Assert.False(task.Execute());
        Microsoft.Build.Framework.BuildErrorEventArgs refused = Assert.Single(_engine.Errors);
        Assert.Equal("MSEAL006", refused.Code);
        Assert.Contains("refusing plain http://", refused.Message, StringComparison.Ordinal);
        Assert.Contains("ModelSealAllowInsecureHttp", refused.Message, StringComparison.Ordinal);

        task = NewTask(version: "1");
        task.KeyServer = "http://0.0.0.0:1/";
        task.AllowInsecureHttp = true;
        Assert.False(task.Execute());
        Assert.Equal(["MSEAL006", "MSEAL007"], _engine.Errors.Select(e => e.Code));
        Assert.Contains("cannot reach", _engine.Errors[1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_data_key_substituted_on_the_way_is_refused_and_nothing_is_sealed()
    {
        // A man in the middle answers the new version with a data key of its own, sealed to the publisher key it saw in
        // the request: the answer opens, but the server's signature does not cover it.
        using var attackerKey = ModelKey.Generate("classifier.1.kattack");
        using var substitute = new SubstitutingHandler(attackerKey);
        SealModels task = NewTask(version: "1");
        task.KeyServerHandler = substitute;

        Assert.False(task.Execute());

        Assert.Equal(1, substitute.Substituted);
        Assert.Contains("not signed by the key server's answer key", _engine.AllText, StringComparison.Ordinal);
        Assert.False(File.Exists(_directory.Sub("out", "classifier.onnx.mseal")));
        Assert.Empty(Directory.Exists(_directory.Sub("out")) ? Directory.GetFiles(_directory.Sub("out")) : []);
    }

    [Fact]
    public void A_pinned_answer_key_the_server_does_not_publish_is_refused()
    {
        SealModels task = NewTask(version: "1");
        task.AnswerKey = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

        Assert.False(task.Execute());

        Assert.Contains("does not publish the pinned answer key", _engine.AllText, StringComparison.Ordinal);
        Assert.False(File.Exists(_directory.Sub("out", "classifier.onnx.mseal")));
    }

    /// <summary>Passes everything to the server but replaces a new version's sealed key with <paramref name="key"/>.</summary>
    private sealed class SubstitutingHandler(ModelKey key) : DelegatingHandler(new SocketsHttpHandler())
    {
        public int Substituted { get; private set; }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            string? body = request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken);
            HttpResponseMessage response = await base.SendAsync(request, cancellationToken);
            if (!request.RequestUri!.AbsolutePath.EndsWith("/versions", StringComparison.Ordinal) || !response.IsSuccessStatusCode || body is null)
            {
                return response;
            }

            using JsonDocument sent = JsonDocument.Parse(body);
            var answer = System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync(cancellationToken))!.AsObject();
            HpkePublicKey publisher = HpkePublicKey.Import(System.Buffers.Text.Base64Url.DecodeFromChars(sent.RootElement.GetProperty("publisherPublicKey").GetString()));
            DateTimeOffset lease = DateTimeOffset.Parse(answer["leaseExpiresAt"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
            (byte[] enc, byte[] sealedKey) = KeyRelease.Seal(key, publisher, answer["modelId"]!.GetValue<string>(), answer["version"]!.GetValue<string>(), "admin", lease);
            answer["keyId"] = key.KeyId;
            answer["enc"] = System.Buffers.Text.Base64Url.EncodeToString(enc);
            answer["sealedKey"] = System.Buffers.Text.Base64Url.EncodeToString(sealedKey);
            response.Content = new StringContent(answer.ToJsonString(), System.Text.Encoding.UTF8, "application/json");
            Substituted++;
            return response;
        }
    }

    private async Task<SealedModelHeader> ReadHeaderAsync(string name)
    {
        await using FileStream file = File.OpenRead(_directory.Sub("out", name));
        return await SealedModelHeader.ReadAsync(file, TestContext.Current.CancellationToken);
    }
}
