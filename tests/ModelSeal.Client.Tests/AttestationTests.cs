using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Hpke;
using ModelSeal.Protocol;

namespace ModelSeal.Client.Tests;

/// <summary>
/// The client's side of device attestation (docs/client.md "Attestation"): with an <see cref="IDeviceAttestation"/>, the
/// first release asks for a challenge, attests, then gets the device key and sends the evidence; once one succeeds, none
/// is sent again. Against <see cref="FakeAttestingServer"/>, which answers and signs as the key server does.
/// </summary>
public sealed class AttestationTests : IDisposable
{
    private static readonly byte[][] Chain = [[0x30, 0x01, 0xAA], [0x30, 0x02, 0xBB, 0xCC]];

    private readonly ConcurrentQueue<string> _events = new();
    private readonly FakeAttestingServer _server;
    private readonly RecordingDeviceKeys _device;
    private readonly InMemoryLeaseCache _leases = new();
    private readonly RenewingTokens _tokens = new();
    private readonly SealedModelHeader _header;

    public AttestationTests()
    {
        _server = new FakeAttestingServer(_events);
        _device = new RecordingDeviceKeys(_events);
        _header = SealedModelHeader.Create("classifier", "1", _server.DataKey.KeyId, ModelContentType.Onnx, 1000, null);
    }

    public void Dispose()
    {
        _server.Dispose();
        _device.Dispose();
    }

    [Fact]
    public async Task The_first_release_gets_a_challenge_attests_then_takes_the_device_key_and_later_releases_send_no_evidence()
    {
        var attestation = new StubAttestation(_events, _ => DeviceAttestationEvidence.AndroidKeyChain(Chain));
        using KeyServerKeySource source = Source(attestation);

        byte[] first = Bytes(await source.GetKeyAsync(_header, TestContext.Current.CancellationToken));
        byte[] second = Bytes(await source.GetKeyAsync(_header, TestContext.Current.CancellationToken));

        Assert.Equal(
            ["POST v1/attestation/challenges", "attest", "device", "POST v1/keys/release", "GET .well-known/jwks.json", "device", "POST v1/keys/release"],
            _events);
        Assert.Equal(first, second);
        Assert.Equal(_server.DataKeyBytes, first);

        (string? bearer, string body) = Assert.Single(_server.ChallengeRequests);
        Assert.Equal("token-0", bearer);
        Assert.Equal(string.Empty, body);
        string challenge = Assert.Single(_server.Issued);
        Assert.Equal(challenge, Base64Url.EncodeToString(Assert.Single(attestation.Challenges)));

        JsonNode[] releases = [.. _server.Releases];
        Assert.Equal(2, releases.Length);
        JsonObject evidence = releases[0]["attestation"]!.AsObject();
        Assert.Equal(["format", "challenge", "certificates"], evidence.Select(p => p.Key));
        Assert.Equal("android-key", evidence["format"]!.GetValue<string>());
        Assert.Equal(challenge, evidence["challenge"]!.GetValue<string>());
        Assert.Equal(Chain.Select(c => Base64Url.EncodeToString(c)), evidence["certificates"]!.AsArray().Select(c => c!.GetValue<string>()));
        Assert.Equal(_device.PublicKey, releases[0]["devicePublicKey"]!.GetValue<string>());
        Assert.False(releases[1].AsObject().ContainsKey("attestation"));
    }

    [Theory]
    [InlineData("apple-appattest")]
    [InlineData("apple-appattest-assertion")]
    public async Task Apple_evidence_is_sent_as_base64url_members(string format)
    {
        byte[] keyId = SHA256.HashData("key"u8);
        byte[] attestationObject = [0xA3, 0x63, 0x66, 0x6D, 0x74];
        byte[] assertion = [0xA2, 0x69, 0xFF, 0xFE];
        var attestation = new StubAttestation(_events, _ => format == "apple-appattest"
            ? DeviceAttestationEvidence.AppleAppAttest(keyId, attestationObject, assertion)
            : DeviceAttestationEvidence.AppleAssertion(assertion));
        using KeyServerKeySource source = Source(attestation);

        (await source.GetKeyAsync(_header, TestContext.Current.CancellationToken)).Dispose();

        JsonObject evidence = Assert.Single(_server.Releases)["attestation"]!.AsObject();
        var expected = new Dictionary<string, string> { ["format"] = format, ["challenge"] = Assert.Single(_server.Issued), ["assertion"] = Base64Url.EncodeToString(assertion) };
        if (format == "apple-appattest")
        {
            expected["keyId"] = Base64Url.EncodeToString(keyId);
            expected["attestationObject"] = Base64Url.EncodeToString(attestationObject);
        }

        Assert.Equal(expected.OrderBy(p => p.Key), evidence.Select(p => KeyValuePair.Create(p.Key, p.Value!.GetValue<string>())).OrderBy(p => p.Key));
    }

    [Fact]
    public async Task A_signed_attestation_rejected_removes_the_lease_and_the_next_release_attests_again()
    {
        // A lease from before the grant had an attestation policy.
        using (KeyServerKeySource before = Source(null))
        {
            (await before.GetKeyAsync(_header, TestContext.Current.CancellationToken)).Dispose();
        }

        Assert.NotNull(await Lease());
        _server.Refusal = ProblemCodes.AttestationRejected;
        using KeyServerKeySource source = Source(new StubAttestation(_events, _ => DeviceAttestationEvidence.AndroidKeyChain(Chain)));

        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(_header, TestContext.Current.CancellationToken).AsTask());

        Assert.Equal(ModelKeyUnavailableReason.AttestationRejected, e.Reason);
        Assert.True(e.IsDefinitiveRefusal, e.Message);
        Assert.Equal(403, e.StatusCode);
        Assert.Contains("IDeviceAttestation", e.Message, StringComparison.Ordinal);
        Assert.Null(await Lease());

        // Not accepted, so the next release brings evidence over a new challenge.
        _server.Refusal = null;
        (await source.GetKeyAsync(_header, TestContext.Current.CancellationToken)).Dispose();
        Assert.Equal(2, _server.Issued.Count);
        Assert.Equal(_server.Issued.Last(), _server.Releases.Last()["attestation"]!["challenge"]!.GetValue<string>());
    }

    [Fact]
    public async Task After_an_accepted_attestation_a_signed_attestation_rejected_makes_the_next_release_attest_again()
    {
        using KeyServerKeySource source = Source(new StubAttestation(_events, _ => DeviceAttestationEvidence.AndroidKeyChain(Chain)));
        (await source.GetKeyAsync(_header, TestContext.Current.CancellationToken)).Dispose();

        // The grant gained a policy the key's attestation does not satisfy, or re-verification rejected the key.
        _server.Refusal = ProblemCodes.AttestationRejected;
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(_header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(ModelKeyUnavailableReason.AttestationRejected, e.Reason);
        Assert.Null(_server.Releases.Last()["attestation"]); // the refused release carried none: it had been accepted

        _server.Refusal = null;
        (await source.GetKeyAsync(_header, TestContext.Current.CancellationToken)).Dispose();

        Assert.Equal(2, _server.Issued.Count);
        Assert.Equal(_server.Issued.Last(), _server.Releases.Last()["attestation"]!["challenge"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_unsigned_attestation_rejected_keeps_the_lease()
    {
        using (KeyServerKeySource before = Source(null))
        {
            (await before.GetKeyAsync(_header, TestContext.Current.CancellationToken)).Dispose();
        }

        _server.Refusal = ProblemCodes.AttestationRejected;
        _server.SignRefusals = false;
        using KeyServerKeySource source = Source(new StubAttestation(_events, _ => DeviceAttestationEvidence.AndroidKeyChain(Chain)));

        Assert.Equal(_server.DataKeyBytes, Bytes(await source.GetKeyAsync(_header, TestContext.Current.CancellationToken)));
        Assert.NotNull(await Lease());
    }

    [Theory]
    [InlineData(HttpStatusCode.ServiceUnavailable)]
    [InlineData(HttpStatusCode.NotFound)]
    [InlineData(HttpStatusCode.Forbidden)]
    public async Task A_failed_challenge_request_is_the_server_unavailable_so_the_lease_decides(HttpStatusCode status)
    {
        var attestation = new StubAttestation(_events, _ => DeviceAttestationEvidence.AndroidKeyChain(Chain));
        using KeyServerKeySource source = Source(attestation);
        _server.ChallengeStatus = status;

        // No lease: the server is unavailable, nothing was attested or sent.
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(_header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(ModelKeyUnavailableReason.ServerUnavailable, e.Reason);
        Assert.Equal((int)status, e.StatusCode);
        Assert.Empty(attestation.Challenges);
        Assert.Empty(_server.Releases);

        // With a lease (from a source without attestation): the lease opens the model and stays.
        using (KeyServerKeySource plain = Source(null))
        {
            (await plain.GetKeyAsync(_header, TestContext.Current.CancellationToken)).Dispose();
        }

        Assert.Equal(_server.DataKeyBytes, Bytes(await source.GetKeyAsync(_header, TestContext.Current.CancellationToken)));
        Assert.NotNull(await Lease());
        Assert.Single(_server.Releases);

        // Once the server issues challenges, the release attests.
        _server.ChallengeStatus = null;
        (await source.GetKeyAsync(_header, TestContext.Current.CancellationToken)).Dispose();
        Assert.NotNull(_server.Releases.Last()["attestation"]);
    }

    [Theory]
    [InlineData("not base64url!")]
    [InlineData("AAAA")]
    [InlineData("")]
    public async Task A_challenge_that_is_not_base64url_of_enough_bytes_is_the_server_unavailable(string challenge)
    {
        var attestation = new StubAttestation(_events, _ => DeviceAttestationEvidence.AndroidKeyChain(Chain));
        using KeyServerKeySource source = Source(attestation);
        _server.ChallengeText = challenge;

        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(_header, TestContext.Current.CancellationToken).AsTask());

        Assert.Equal(ModelKeyUnavailableReason.ServerUnavailable, e.Reason);
        Assert.Contains("attestation challenge is not base64url of at least 16 bytes", e.Message, StringComparison.Ordinal);
        Assert.Empty(attestation.Challenges);
        Assert.Empty(_server.Releases);
    }

    [Fact]
    public async Task A_failing_attestation_is_AttestationFailed_sends_nothing_and_keeps_the_lease()
    {
        using (KeyServerKeySource plain = Source(null))
        {
            (await plain.GetKeyAsync(_header, TestContext.Current.CancellationToken)).Dispose();
        }

        int calls = 0;
        var attestation = new StubAttestation(_events, _ => ++calls switch
        {
            1 => throw new InvalidOperationException("StrongBox is unavailable"),
            2 => null!,
            _ => DeviceAttestationEvidence.AndroidKeyChain(Chain),
        });
        using KeyServerKeySource source = Source(attestation);

        var threw = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(_header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(ModelKeyUnavailableReason.AttestationFailed, threw.Reason);
        Assert.IsType<InvalidOperationException>(threw.InnerException);
        Assert.Contains("StrongBox is unavailable", threw.Message, StringComparison.Ordinal);
        Assert.Contains("docs/client.md", threw.Message, StringComparison.Ordinal);
        Assert.False(threw.IsDefinitiveRefusal);

        var none = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(_header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(ModelKeyUnavailableReason.AttestationFailed, none.Reason);
        Assert.Contains("returned no evidence", none.Message, StringComparison.Ordinal);

        Assert.Single(_server.Releases); // the plain one only
        Assert.NotNull(await Lease());

        (await source.GetKeyAsync(_header, TestContext.Current.CancellationToken)).Dispose();
        Assert.Equal(3, _server.Issued.Count);
        Assert.NotNull(_server.Releases.Last()["attestation"]);
    }

    [Fact]
    public async Task A_401_on_the_challenge_renews_the_token_once_and_the_release_uses_the_new_one()
    {
        _server.RejectToken = "token-0";
        using KeyServerKeySource source = Source(new StubAttestation(_events, _ => DeviceAttestationEvidence.AndroidKeyChain(Chain)));

        (await source.GetKeyAsync(_header, TestContext.Current.CancellationToken)).Dispose();

        Assert.Equal(["token-0", "token-1"], _server.ChallengeRequests.Select(r => r.Bearer));
        Assert.Equal(["token-1"], _server.ReleaseBearers);
        Assert.Equal(1, _tokens.Renewals);
        Assert.Single(_server.Issued); // the refused request got none
    }

    [Fact]
    public async Task A_second_401_on_the_release_after_the_challenge_renewed_is_a_refusal_not_another_renewal()
    {
        _server.RejectToken = "token-0";
        _server.RejectReleases = true;
        using KeyServerKeySource source = Source(new StubAttestation(_events, _ => DeviceAttestationEvidence.AndroidKeyChain(Chain)));

        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(_header, TestContext.Current.CancellationToken).AsTask());

        Assert.Equal(ModelKeyUnavailableReason.Unauthorized, e.Reason);
        Assert.Equal(1, _tokens.Renewals);
        Assert.Single(_server.Releases);
    }

    [Fact]
    public async Task Concurrent_first_releases_attest_once_and_the_waiting_one_sends_no_evidence()
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var attestation = new StubAttestation(_events, async _ =>
        {
            entered.TrySetResult();
            await gate.Task;
            return DeviceAttestationEvidence.AndroidKeyChain(Chain);
        });
        using KeyServerKeySource source = Source(attestation);
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        source.WaitingForAttestation = () => waiting.TrySetResult();
        TimeSpan bound = TimeSpan.FromSeconds(30); // a bound for a broken implementation, not a synchronisation

        Task<ModelKey> a = source.GetKeyAsync(_header, TestContext.Current.CancellationToken).AsTask();
        await entered.Task.WaitAsync(bound, TestContext.Current.CancellationToken);
        Task<ModelKey> b = source.GetKeyAsync(_header, TestContext.Current.CancellationToken).AsTask();
        await waiting.Task.WaitAsync(bound, TestContext.Current.CancellationToken); // b waits for a's attestation
        Assert.False(b.IsCompleted);
        gate.SetResult();
        ModelKey[] keys = await Task.WhenAll(a, b).WaitAsync(bound, TestContext.Current.CancellationToken);

        Assert.Equal(Bytes(keys[0]), Bytes(keys[1]));
        Assert.Single(_server.Issued);
        Assert.Single(attestation.Challenges);
        JsonNode[] releases = [.. _server.Releases];
        Assert.Equal(2, releases.Length);
        Assert.NotNull(releases[0]["attestation"]);
        Assert.Null(releases[1]["attestation"]);
    }

    [Fact]
    public async Task An_IDeviceAttestation_registered_in_the_services_is_used()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IDeviceKeyStore>(_device);
        services.AddSingleton<ILeaseCache>(_leases);
        services.AddSingleton<ITokenSource>(_tokens);
        services.AddModelSeal(o =>
        {
            o.ServerUrl = FakeAttestingServer.BaseAddress.AbsoluteUri;
            o.MaxRetryAttempts = 0;
        });
        services.AddSingleton<IDeviceAttestation>(new StubAttestation(_events, _ => DeviceAttestationEvidence.AndroidKeyChain(Chain)));
        services.AddHttpClient(ModelSealServiceCollectionExtensions.HttpClientName).ConfigurePrimaryHttpMessageHandler(() => _server.Handler());
        await using ServiceProvider provider = services.BuildServiceProvider();

        (await provider.GetRequiredService<IModelKeySource>().GetKeyAsync(_header, TestContext.Current.CancellationToken)).Dispose();

        Assert.Equal(["POST v1/attestation/challenges", "attest", "device", "POST v1/keys/release"], _events.Take(4));
        Assert.NotNull(Assert.Single(_server.Releases)["attestation"]);
    }

    [Fact]
    public void The_evidence_factories_copy_their_input_and_refuse_empty_evidence()
    {
        byte[] certificate = [1, 2, 3];
        var evidence = DeviceAttestationEvidence.AndroidKeyChain([certificate]);
        certificate[0] = 9;
        Assert.Equal(Base64Url.EncodeToString([1, 2, 3]), evidence.ToWire([7]).Certificates![0]);

        Assert.Throws<ArgumentException>(() => DeviceAttestationEvidence.AndroidKeyChain([]));
        Assert.Throws<ArgumentException>(() => DeviceAttestationEvidence.AndroidKeyChain([[1], []]));
        Assert.Throws<ArgumentNullException>(() => DeviceAttestationEvidence.AndroidKeyChain(null!));
        Assert.Throws<ArgumentException>(() => DeviceAttestationEvidence.AppleAppAttest([1], [], [1]));
        Assert.Throws<ArgumentNullException>(() => DeviceAttestationEvidence.AppleAssertion(null!));
    }

    private KeyServerKeySource Source(IDeviceAttestation? attestation)
    {
        var http = new HttpClient(_server.Handler()) { BaseAddress = FakeAttestingServer.BaseAddress };
        return new KeyServerKeySource(http, _tokens, _device, _leases, attestation: attestation);
    }

    private Task<ModelLease?> Lease() =>
        _leases.GetAsync(_header.ModelId, _header.ModelVersion, _header.KeyId, TestContext.Current.CancellationToken).AsTask();

    private static byte[] Bytes(ModelKey key)
    {
        using (key)
        {
            byte[] bytes = new byte[ModelKey.SizeInBytes];
            key.Export(bytes);
            return bytes;
        }
    }

    private sealed class StubAttestation(ConcurrentQueue<string> events, Func<ReadOnlyMemory<byte>, ValueTask<DeviceAttestationEvidence>> attest) : IDeviceAttestation
    {
        public StubAttestation(ConcurrentQueue<string> events, Func<ReadOnlyMemory<byte>, DeviceAttestationEvidence> attest)
            : this(events, challenge => ValueTask.FromResult(attest(challenge)))
        {
        }

        public ConcurrentQueue<byte[]> Challenges { get; } = new();

        public ValueTask<DeviceAttestationEvidence> AttestAsync(ReadOnlyMemory<byte> challenge, CancellationToken cancellationToken = default)
        {
            events.Enqueue("attest");
            Challenges.Enqueue(challenge.ToArray());
            return attest(challenge);
        }
    }

    private sealed class RecordingDeviceKeys(ConcurrentQueue<string> events) : IDeviceKeyStore, IDisposable
    {
        private readonly HpkeKeyPair _key = HpkeKeyPair.Generate();

        public string PublicKey => Base64Url.EncodeToString(_key.PublicKey.Encoded.Span);

        public ValueTask<IHpkeKeyAgreement> GetOrCreateAsync(CancellationToken cancellationToken = default)
        {
            events.Enqueue("device");
            return ValueTask.FromResult<IHpkeKeyAgreement>(_key);
        }

        public void Dispose() => _key.Dispose();
    }

    /// <summary>Tokens <c>token-N</c>, N counting the renewals; the subject stays the same.</summary>
    private sealed class RenewingTokens : ITokenSource
    {
        private int _renewals;

        public int Renewals => Volatile.Read(ref _renewals);

        public ValueTask<AccessToken> GetTokenAsync(CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(new AccessToken($"token-{Renewals}", FakeAttestingServer.Subject, DateTimeOffset.UtcNow.AddHours(1)));

        public ValueTask<AccessToken> RenewAsync(CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _renewals);
            return GetTokenAsync(cancellationToken);
        }
    }
}

/// <summary>
/// A key server in a message handler: its JWKS with an answer key of its own, challenges, and releases and refusals
/// signed as docs/protocol.md section 2.2 says. Records each request in order.
/// </summary>
internal sealed class FakeAttestingServer(ConcurrentQueue<string> events) : IDisposable
{
    public const string Subject = "device-subject";

    public static readonly Uri BaseAddress = new("http://127.0.0.1:9/");

    private readonly ECDsa _answerKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public ModelKey DataKey { get; } = ModelKey.Generate("key-1");

    public byte[] DataKeyBytes
    {
        get
        {
            byte[] bytes = new byte[ModelKey.SizeInBytes];
            DataKey.Export(bytes);
            return bytes;
        }
    }

    public ConcurrentQueue<(string? Bearer, string Body)> ChallengeRequests { get; } = new();

    public ConcurrentQueue<string> Issued { get; } = new();

    public ConcurrentQueue<JsonNode> Releases { get; } = new();

    public ConcurrentQueue<string?> ReleaseBearers { get; } = new();

    /// <summary>Answer challenge requests with this status (null: issue a challenge).</summary>
    public HttpStatusCode? ChallengeStatus { get; set; }

    /// <summary>Issue this text as the challenge (null: 32 random bytes).</summary>
    public string? ChallengeText { get; set; }

    /// <summary>Refuse releases with this problem code (null: release).</summary>
    public string? Refusal { get; set; }

    public bool SignRefusals { get; set; } = true;

    /// <summary>Answer 401 to requests with this bearer token.</summary>
    public string? RejectToken { get; set; }

    /// <summary>Answer 401 to every release.</summary>
    public bool RejectReleases { get; set; }

    private string Kid
    {
        get
        {
            ECParameters p = _answerKey.ExportParameters(false);
            return Base64Url.EncodeToString(SHA256.HashData([0x04, .. p.Q.X!, .. p.Q.Y!]));
        }
    }

    public HttpMessageHandler Handler() => new Answering(this);

    public void Dispose()
    {
        _answerKey.Dispose();
        DataKey.Dispose();
    }

    private async Task<HttpResponseMessage> AnswerAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        string path = request.RequestUri!.AbsolutePath.TrimStart('/');
        events.Enqueue($"{request.Method} {path}");
        string body = request.Content is null ? string.Empty : await request.Content.ReadAsStringAsync(cancellationToken);
        string? bearer = request.Headers.Authorization?.Parameter;
        switch (path)
        {
            case ".well-known/jwks.json":
                ECParameters p = _answerKey.ExportParameters(false);
                var jwks = new JsonObject
                {
                    ["keys"] = new JsonArray(new JsonObject
                    {
                        ["kty"] = "EC", ["crv"] = "P-256", ["x"] = Base64Url.EncodeToString(p.Q.X), ["y"] = Base64Url.EncodeToString(p.Q.Y),
                        ["kid"] = Kid, ["alg"] = "ES256", ["use"] = "sig", ["purpose"] = "answer",
                    }),
                };
                return Json(HttpStatusCode.OK, jwks);
            case "v1/attestation/challenges":
                ChallengeRequests.Enqueue((bearer, body));
                if (bearer == RejectToken)
                {
                    return Problem(HttpStatusCode.Unauthorized, "unauthorized", null);
                }

                if (ChallengeStatus is { } status)
                {
                    return Problem(status, status == HttpStatusCode.NotFound ? "not-found" : "forbidden", null);
                }

                string challenge = ChallengeText ?? Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));
                Issued.Enqueue(challenge);
                return Json(HttpStatusCode.Created, new JsonObject { ["challenge"] = challenge, ["expiresAt"] = Rfc3339.Format(DateTimeOffset.UtcNow.AddMinutes(5)) });
            case "v1/keys/release":
                JsonNode release = JsonNode.Parse(body)!;
                Releases.Enqueue(release);
                ReleaseBearers.Enqueue(bearer);
                if (RejectReleases || bearer == RejectToken)
                {
                    return Problem(HttpStatusCode.Unauthorized, "unauthorized", null);
                }

                return Refusal is { } code ? Problem(HttpStatusCode.Forbidden, code, SignRefusals ? release : null) : Release(release);
            default:
                return Problem(HttpStatusCode.NotFound, "not-found", null);
        }
    }

    private HttpResponseMessage Release(JsonNode request)
    {
        byte[] nonce = Base64Url.DecodeFromChars(request["nonce"]!.GetValue<string>());
        byte[] device = Base64Url.DecodeFromChars(request["devicePublicKey"]!.GetValue<string>());
        string modelId = request["modelId"]!.GetValue<string>();
        string version = request["version"]!.GetValue<string>();
        DateTimeOffset lease = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.AddDays(1).ToUnixTimeSeconds());
        (byte[] enc, byte[] sealedKey) = KeyRelease.Seal(DataKey, HpkePublicKey.Import(device), modelId, version, Subject, lease);
        byte[] statement = SignedAnswers.Released(nonce, device, modelId, version, DataKey.KeyId, Subject, lease, enc, sealedKey);
        return Json(HttpStatusCode.OK, new JsonObject
        {
            ["modelId"] = modelId, ["version"] = version, ["keyId"] = DataKey.KeyId, ["suite"] = KeyRelease.Suite,
            ["enc"] = Base64Url.EncodeToString(enc), ["sealedKey"] = Base64Url.EncodeToString(sealedKey),
            ["leaseExpiresAt"] = Rfc3339.Format(lease), ["kid"] = Kid, ["signature"] = Sign(statement),
        });
    }

    /// <summary>A problem document, signed over <paramref name="signedFor"/> (a release request) when given.</summary>
    private HttpResponseMessage Problem(HttpStatusCode status, string code, JsonNode? signedFor)
    {
        var problem = new JsonObject { ["type"] = ProblemCodes.TypePrefix + code, ["title"] = code, ["status"] = (int)status };
        if (signedFor is not null)
        {
            byte[] statement = SignedAnswers.Refused(
                Base64Url.DecodeFromChars(signedFor["nonce"]!.GetValue<string>()), Base64Url.DecodeFromChars(signedFor["devicePublicKey"]!.GetValue<string>()),
                signedFor["modelId"]!.GetValue<string>(), signedFor["version"]!.GetValue<string>(), Subject, code);
            problem["kid"] = Kid;
            problem["signature"] = Sign(statement);
        }

        var response = Json(status, problem);
        response.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/problem+json");
        return response;
    }

    private string Sign(byte[] statement) =>
        Base64Url.EncodeToString(_answerKey.SignData(statement, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation));

    private static HttpResponseMessage Json(HttpStatusCode status, JsonNode body) =>
        new(status) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };

    private sealed class Answering(FakeAttestingServer server) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            server.AnswerAsync(request, cancellationToken);
    }
}
