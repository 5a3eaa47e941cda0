using System.Net;
using System.Text;
using ModelSeal.Hpke;

namespace ModelSeal.Server.Tests;

/// <summary>Malformed input: always a 4xx ProblemDetails, never a 500.</summary>
public sealed class InputTests : IAsyncLifetime
{
    private static readonly string[] MixedModels = ["*", "m"];
    private static readonly string[] OneModel = ["m"];
    private TestServer _server = null!;
    private string _admin = null!;
    private string _token = null!;
    private HpkeKeyPair _device = null!;

    public async ValueTask InitializeAsync()
    {
        _server = await TestServer.StartAsync();
        _admin = await _server.AdminTokenAsync();
        await _server.CreateModelAsync(_admin, "m");
        (await _server.CreateVersionAsync(_admin, "m")).Key.Dispose();
        Licence licence = await _server.CreateLicenceAsync(_admin, "s", ["m"]);
        _token = await _server.LicenceTokenAsync(licence);
        _device = HpkeKeyPair.Generate();
    }

    public async ValueTask DisposeAsync()
    {
        _device.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task Invalid_json_is_400()
    {
        foreach (string body in new[] { "{", "not json", "[1,2]", "null", "\"text\"", "{\"modelId\": 5}", "{\"modelId\": \"m\",}", "{\"modelId\": \"m\" \"version\": \"1\"}", "{\"modelId\": \"m\", \"modelId\": \"n\"}" })
        {
            (await Post("/v1/keys/release", body, _token)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
            (await Post("/v1/admin/models", body, _admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
            (await Post("/v1/token", body, null)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        }

        (await Post("/v1/admin/licences", "{\"subject\":\"s\",\"models\":[\"m\"],\"maxDevices\":\"three\"}", _admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        Api wrongType = await Post("/v1/admin/licences", "{\"subject\":\"s\",\"models\":[\"m\"],\"maxDevices\":\"three\"}", _admin);
        Assert.True(wrongType.Json.GetProperty("errors").TryGetProperty("$.maxDevices", out _), wrongType.Text);

        // Not JSON at all.
        using var text = new StringContent("modelId=m", Encoding.UTF8, "text/plain");
        (await _server.SendAsync(HttpMethod.Post, "/v1/keys/release", text, _token)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        (await _server.SendAsync(HttpMethod.Post, "/v1/keys/release", null, _token)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
    }

    [Fact]
    public async Task Missing_and_invalid_fields_are_named()
    {
        Api empty = await _server.PostAsync("/v1/keys/release", new { protocol = 2 }, _token);
        empty.AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        Assert.True(empty.Json.GetProperty("errors").TryGetProperty("modelId", out _));
        Assert.True(empty.Json.GetProperty("errors").TryGetProperty("version", out _));
        Assert.True(empty.Json.GetProperty("errors").TryGetProperty("devicePublicKey", out _));

        Api licence = await _server.PostAsync("/v1/admin/licences", new { subject = "", models = Array.Empty<string>(), maxDevices = 0, expiresAt = "tomorrow", notBefore = "2026-01-01T00:00:00" }, _admin);
        licence.AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        foreach (string field in new[] { "subject", "models", "maxDevices", "expiresAt", "notBefore" })
        {
            Assert.True(licence.Json.GetProperty("errors").TryGetProperty(field, out _), $"{field} not named: {licence.Text}");
        }

        (await _server.PostAsync("/v1/admin/licences", new { subject = "s", models = MixedModels, maxDevices = 1 }, _admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        (await _server.PostAsync("/v1/admin/licences", new { subject = "s", models = OneModel, maxDevices = 1, notBefore = "2026-02-01T00:00:00Z", expiresAt = "2026-01-01T00:00:00Z" }, _admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        (await _server.PostAsync("/v1/token", new { grantType = "licence", credential = "x" })).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
    }

    [Fact]
    public async Task Bad_identifiers_are_400()
    {
        string key = TestServer.Base64Url(_device.PublicKey.Encoded.Span);
        foreach (string modelId in new[] { "", "../etc/passwd", "-leading", "with space", "caf\u00e9", new string('a', 129) })
        {
            (await _server.PostAsync("/v1/keys/release", new { modelId, version = "1", devicePublicKey = key, nonce = ServerClient.Nonce(), protocol = 2 }, _token)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
            (await _server.PostAsync("/v1/admin/models", new { modelId }, _admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        }

        foreach (string version in new[] { "", "1/2", ".1", new string('1', 65) })
        {
            (await _server.PostAsync("/v1/keys/release", new { modelId = "m", version, devicePublicKey = key, nonce = ServerClient.Nonce(), protocol = 2 }, _token)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        }

        // "latest" names the newest version, so no version may be called that.
        (await _server.PostAsync("/v1/admin/models/m/versions", new { version = "latest", publisherPublicKey = key, nonce = ServerClient.Nonce(), protocol = 2 }, _admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        (await _server.PostAsync("/v1/admin/models/bad%20id/versions", new { publisherPublicKey = key, nonce = ServerClient.Nonce(), protocol = 2 }, _admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        (await _server.PostAsync("/v1/admin/models/m/versions/bad%20v/disable", null, _admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");

        // The longest ids still give a key id within 128 characters.
        string longId = new('x', 128);
        await _server.CreateModelAsync(_admin, longId);
        (Release release, ModelKey created) = await _server.CreateVersionAsync(_admin, longId, version: new string('9', 64));
        created.Dispose();
        Assert.Equal(128, release.KeyId.Length);
        Assert.True(Identifier.IsValid(release.KeyId, Identifier.MaxIdLength));
    }

    [Fact]
    public async Task Invalid_device_keys_are_400_invalid_device_key()
    {
        byte[] valid = _device.PublicKey.Encoded.ToArray();
        byte[] offCurve = (byte[])valid.Clone();
        offCurve[64] ^= 1;
        byte[] compressed = [0x02, .. valid.AsSpan(1, 32)];
        byte[] infinity = new byte[65];
        infinity[0] = 0x04;
        byte[] wrongPrefix = (byte[])valid.Clone();
        wrongPrefix[0] = 0x05;
        byte[] beyondPrime = new byte[65];
        beyondPrime.AsSpan(1).Fill(0xFF);
        beyondPrime[0] = 0x04;
        foreach (string devicePublicKey in new[]
        {
            TestServer.Base64Url(offCurve), TestServer.Base64Url(compressed), TestServer.Base64Url(infinity), TestServer.Base64Url(wrongPrefix),
            TestServer.Base64Url(beyondPrime), TestServer.Base64Url(valid.AsSpan(0, 64)), TestServer.Base64Url([.. valid, 0]), "!!not-base64url!!", "AAAA",
        })
        {
            Api answer = await _server.PostAsync("/v1/keys/release", new { modelId = "m", version = "latest", devicePublicKey, nonce = ServerClient.Nonce(), protocol = 2 }, _token);
            answer.AssertProblem(HttpStatusCode.BadRequest, "invalid-device-key");
            (await _server.PostAsync("/v1/admin/models/m/versions", new { publisherPublicKey = devicePublicKey, nonce = ServerClient.Nonce(), protocol = 2 }, _admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-device-key");
        }

        // The order of the checks: an unknown version is reported before the key.
        (await _server.PostAsync("/v1/keys/release", new { modelId = "m", version = "7", devicePublicKey = "AAAA", nonce = ServerClient.Nonce(), protocol = 2 }, _token)).AssertProblem(HttpStatusCode.NotFound, "version-not-found");
    }

    [Fact]
    public async Task Oversized_bodies_are_413()
    {
        string big = "{\"modelId\":\"m\",\"version\":\"1\",\"devicePublicKey\":\"" + new string('A', 20_000) + "\"}";
        // The release endpoint takes attestation evidence: its limit is 256 KiB (docs/protocol.md section 6.1).
        string bigRelease = "{\"modelId\":\"m\",\"version\":\"1\",\"devicePublicKey\":\"" + new string('A', 270_000) + "\"}";
        (await Post("/v1/keys/release", bigRelease, _token)).AssertProblem(HttpStatusCode.RequestEntityTooLarge, "request-too-large");
        (await Post("/v1/keys/release", big, _token)).AssertProblem(HttpStatusCode.BadRequest, "unsupported-protocol-version");
        (await Post("/v1/token", big, null)).AssertProblem(HttpStatusCode.RequestEntityTooLarge, "request-too-large");
        (await Post("/v1/admin/models", big, _admin)).AssertProblem(HttpStatusCode.RequestEntityTooLarge, "request-too-large");

        // Without a Content-Length (chunked), the limit applies while reading.
        using var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big)));
        chunked.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/admin/models") { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", _admin);
        using HttpResponseMessage response = await _server.Client.SendAsync(request, TestContext.Current.CancellationToken);
        (await Api.ReadAsync(response)).AssertProblem(HttpStatusCode.RequestEntityTooLarge, "request-too-large");

        // Just under the limit is fine (and answered on its merits).
        string fits = "{\"modelId\":\"m\",\"pad\":\"" + new string('A', 16_000) + "\"}";
        (await Post("/v1/admin/models", fits, _admin)).AssertProblem(HttpStatusCode.Conflict, "model-exists");
    }

    [Fact]
    public async Task Unknown_routes_and_methods_are_problems_too()
    {
        (await _server.GetAsync("/v1/nothing-here", _admin)).AssertProblem(HttpStatusCode.NotFound, "not-found");
        (await _server.GetAsync("/v1/keys/release", _token)).AssertProblem(HttpStatusCode.MethodNotAllowed, "method-not-allowed");
        (await _server.GetAsync("/v1/nothing-here")).AssertProblem(HttpStatusCode.NotFound, "not-found");
    }

    private Task<Api> Post(string path, string body, string? token) =>
        _server.SendAsync(HttpMethod.Post, path, new StringContent(body, Encoding.UTF8, "application/json"), token);
}
