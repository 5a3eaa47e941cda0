using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Hpke;

namespace ModelSeal.Client.Tests;

/// <summary>
/// Someone between the app and the key server (a proxy, a captive portal, an attacker with a trusted certificate)
/// answers in the server's place (docs/protocol.md section 2.2): only the server's signed answer to this request counts.
/// </summary>
public sealed class SignedAnswerTests : IAsyncLifetime
{
    private readonly TempDirectory _client = new();
    private TestKeyServer? _server;
    private SealedSample? _sample;
    private TestLicence? _licence;

    private TestKeyServer Server => _server!;

    private SealedSample Sample => _sample!;

    public async ValueTask InitializeAsync()
    {
        _server = await TestKeyServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        _sample = await Server.PublishSampleAsync("classifier");
        await Server.PublishSampleAsync("other");
        _licence = await Server.CreateLicenceAsync("acme-app", ["classifier"]);
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _client.Dispose();
    }

    [Fact]
    public async Task A_forged_release_with_a_lease_until_2099_is_ignored_and_the_real_lease_kept()
    {
        var tamper = new Tamper();
        await using ServiceProvider services = Services(tamper);
        IModelKeySource source = services.GetRequiredService<IModelKeySource>();
        byte[] real = Bytes(await source.GetKeyAsync(Sample.Header, TestContext.Current.CancellationToken));
        ModelLease before = (await Lease(services))!;

        // The attacker knows the device's public key (it is in the request) and seals a key of its own to it.
        using var attackerKey = ModelKey.Generate(Sample.Header.KeyId);
        tamper.Release = (request, _) => Forged(request, attackerKey, new DateTimeOffset(2099, 1, 1, 0, 0, 0, TimeSpan.Zero));

        byte[] opened = Bytes(await source.GetKeyAsync(Sample.Header, TestContext.Current.CancellationToken));

        Assert.Equal(real, opened); // from the lease: the forged answer was not used
        Assert.Equal(before.LeaseExpiresAt, (await Lease(services))!.LeaseExpiresAt);
        Assert.Equal(1, tamper.Rewritten);
    }

    [Fact]
    public async Task A_forged_release_without_a_lease_is_ServerUnavailable_and_stores_nothing()
    {
        using var attackerKey = ModelKey.Generate(Sample.Header.KeyId);
        var tamper = new Tamper { Release = (request, _) => Forged(request, attackerKey, DateTimeOffset.UtcNow.AddDays(1)) };
        await using ServiceProvider services = Services(tamper);

        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => services.GetRequiredService<IModelKeySource>().GetKeyAsync(Sample.Header, TestContext.Current.CancellationToken).AsTask());

        Assert.Equal(ModelKeyUnavailableReason.ServerUnavailable, e.Reason);
        Assert.Contains("not signed by its answer key", e.Message, StringComparison.Ordinal);
        Assert.Null(await Lease(services));
    }

    [Fact]
    public async Task A_replayed_answer_of_an_earlier_request_is_rejected()
    {
        var tamper = new Tamper();
        string? recorded = null;
        tamper.Release = (_, answer) =>
        {
            recorded = answer;
            return null;
        };
        await using (ServiceProvider first = Services(tamper))
        {
            (await first.GetRequiredService<IModelKeySource>().GetKeyAsync(Sample.Header, TestContext.Current.CancellationToken)).Dispose();
        }

        // The same device, without its lease, is answered with the recording: a valid signature, for another nonce.
        foreach (string lease in Directory.GetFiles(_client.Sub("leases"), "*.lease.json"))
        {
            File.Delete(lease);
        }

        var replay = new Tamper { Release = (_, _) => Tamper.Json(HttpStatusCode.OK, recorded!) };
        await using ServiceProvider replayed = Services(replay);
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => replayed.GetRequiredService<IModelKeySource>().GetKeyAsync(Sample.Header, TestContext.Current.CancellationToken).AsTask());

        Assert.Equal(ModelKeyUnavailableReason.ServerUnavailable, e.Reason);
        Assert.Null(await Lease(replayed));
    }

    [Fact]
    public async Task Unsigned_and_replayed_refusals_do_not_remove_the_lease()
    {
        var tamper = new Tamper();
        await using ServiceProvider services = Services(tamper);
        IModelKeySource source = services.GetRequiredService<IModelKeySource>();
        byte[] real = Bytes(await source.GetKeyAsync(Sample.Header, TestContext.Current.CancellationToken));

        // A real, signed refusal — for another model and another nonce — replayed as the answer about this one.
        SealedModelHeader other = SealedModelHeader.Create("other", Sample.Header.ModelVersion, Sample.Header.KeyId, ModelContentType.Onnx, 1000, null);
        string? signedRefusal = null;
        tamper.Release = (_, answer) =>
        {
            signedRefusal = answer;
            return null;
        };
        var refused = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(other, TestContext.Current.CancellationToken).AsTask());
        Assert.True(refused.IsSignedRefusal, refused.Message);
        Assert.Equal("model-not-licensed", refused.ProblemCode);
        Assert.Contains("\"signature\"", signedRefusal, StringComparison.Ordinal);

        string unsigned = JsonSerializer.Serialize(new { type = "https://modelseal.dev/problems/licence-revoked", title = "The licence is revoked or does not exist.", status = 403 });
        string replayed = signedRefusal!.Replace("model-not-licensed", "licence-revoked", StringComparison.Ordinal);
        foreach ((HttpStatusCode status, string body, string mediaType) in new[]
        {
            (HttpStatusCode.Forbidden, unsigned, "application/problem+json"),
            (HttpStatusCode.Forbidden, signedRefusal, "application/problem+json"),
            (HttpStatusCode.Forbidden, replayed, "application/problem+json"),
            (HttpStatusCode.Gone, unsigned.Replace("licence-revoked", "version-destroyed", StringComparison.Ordinal), "application/problem+json"),
            (HttpStatusCode.Unauthorized, "{}", "application/json"),
        })
        {
            tamper.Release = (_, _) => Tamper.Json(status, body, mediaType);
            byte[] opened = Bytes(await source.GetKeyAsync(Sample.Header, TestContext.Current.CancellationToken));
            Assert.Equal(real, opened);
            Assert.NotNull(await Lease(services));
        }
    }

    [Theory]
    [InlineData(HttpStatusCode.OK)]
    [InlineData(HttpStatusCode.Forbidden)]
    [InlineData(HttpStatusCode.NotFound)]
    public async Task A_captive_portal_page_falls_back_to_the_lease(HttpStatusCode status)
    {
        var tamper = new Tamper();
        await using ServiceProvider services = Services(tamper);
        IModelKeySource source = services.GetRequiredService<IModelKeySource>();
        byte[] real = Bytes(await source.GetKeyAsync(Sample.Header, TestContext.Current.CancellationToken));

        tamper.Release = (_, _) => Tamper.Json(status, "<html><body>Please sign in to the hotel Wi-Fi</body></html>", "text/html");
        tamper.Token = tamper.Release;

        Assert.Equal(real, Bytes(await source.GetKeyAsync(Sample.Header, TestContext.Current.CancellationToken)));
        Assert.NotNull(await Lease(services));
    }

    [Fact]
    public async Task An_answer_key_other_than_the_pinned_one_is_refused()
    {
        await using ServiceProvider services = Services(new Tamper(), o => o.AnswerKeyId = "pinned-key-of-another-server-0000000000000");

        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => services.GetRequiredService<IModelKeySource>().GetKeyAsync(Sample.Header, TestContext.Current.CancellationToken).AsTask());

        Assert.Equal(ModelKeyUnavailableReason.ServerUnavailable, e.Reason);
        Assert.Contains("does not publish the answer key 'pinned-key-of-another-server-0000000000000'", e.Message, StringComparison.Ordinal);
        Assert.Null(await Lease(services));
    }

    [Fact]
    public async Task A_learned_answer_key_is_kept_and_pins_later_runs()
    {
        await using (ServiceProvider first = Services(new Tamper()))
        {
            (await first.GetRequiredService<IModelKeySource>().GetKeyAsync(Sample.Header, TestContext.Current.CancellationToken)).Dispose();
        }

        string learned = File.ReadAllText(_client.Sub("leases", "answer-key.kid")).Trim();
        using var jwks = JsonDocument.Parse(await new HttpClient().GetStringAsync(new Uri(Server.Address, ".well-known/jwks.json"), TestContext.Current.CancellationToken));
        Assert.Equal(
            jwks.RootElement.GetProperty("keys").EnumerateArray().Single(k => k.GetProperty("purpose").GetString() == "answer").GetProperty("kid").GetString(),
            learned);

        // A later run against a server that publishes another answer key (a substitute) refuses it.
        File.WriteAllText(_client.Sub("leases", "answer-key.kid"), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n");
        foreach (string lease in Directory.GetFiles(_client.Sub("leases"), "*.lease.json"))
        {
            File.Delete(lease);
        }

        await using ServiceProvider later = Services(new Tamper());
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => later.GetRequiredService<IModelKeySource>().GetKeyAsync(Sample.Header, TestContext.Current.CancellationToken).AsTask());
        Assert.Contains("does not publish the answer key", e.Message, StringComparison.Ordinal);
    }

    private ServiceProvider Services(Tamper tamper, Action<ModelSealClientOptions>? configure = null)
    {
        var services = new ServiceCollection();
        services.AddModelSeal(o =>
        {
            o.ServerUrl = Server.Url;
            o.LicenceId = _licence!.LicenceId;
            o.CredentialFile = _licence.CredentialFile;
            o.DeviceKeyFile = _client.Sub("device", "device.key");
            o.LeaseCacheDirectory = _client.Sub("leases");
            o.MaxRetryAttempts = 0;
            configure?.Invoke(o);
        });
        services.AddHttpClient(ModelSealServiceCollectionExtensions.HttpClientName).AddHttpMessageHandler(() => tamper);
        return services.BuildServiceProvider();
    }

    private Task<ModelLease?> Lease(ServiceProvider services) =>
        services.GetRequiredService<ILeaseCache>().GetAsync(Sample.Header.ModelId, Sample.Header.ModelVersion, Sample.Header.KeyId, TestContext.Current.CancellationToken).AsTask();

    private static byte[] Bytes(ModelKey key)
    {
        using (key)
        {
            byte[] bytes = new byte[ModelKey.SizeInBytes];
            key.Export(bytes);
            return bytes;
        }
    }

    /// <summary>A release answer made by someone without the answer key: a key of its own, sealed to the device.</summary>
    private HttpResponseMessage Forged(JsonNode request, ModelKey attackerKey, DateTimeOffset lease)
    {
        HpkePublicKey device = HpkePublicKey.Import(System.Buffers.Text.Base64Url.DecodeFromChars(request["devicePublicKey"]!.GetValue<string>()));
        (byte[] enc, byte[] sealedKey) = KeyRelease.Seal(attackerKey, device, Sample.Header.ModelId, Sample.Header.ModelVersion, "acme-app", lease);
        var body = new JsonObject
        {
            ["modelId"] = Sample.Header.ModelId,
            ["version"] = Sample.Header.ModelVersion,
            ["keyId"] = Sample.Header.KeyId,
            ["suite"] = KeyRelease.Suite,
            ["enc"] = System.Buffers.Text.Base64Url.EncodeToString(enc),
            ["sealedKey"] = System.Buffers.Text.Base64Url.EncodeToString(sealedKey),
            ["leaseExpiresAt"] = lease.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture),
            ["kid"] = File.Exists(_client.Sub("leases", "answer-key.kid")) ? File.ReadAllText(_client.Sub("leases", "answer-key.kid")).Trim() : "unknown",
            ["signature"] = System.Buffers.Text.Base64Url.EncodeToString(new byte[64]),
        };
        return Tamper.Json(HttpStatusCode.OK, body.ToJsonString());
    }
}
