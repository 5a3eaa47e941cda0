using System.Buffers.Text;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using ModelSeal.Hpke;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Tests;

/// <summary>
/// Protocol 2 (docs/protocol.md section 2.2): the server signs every key answer and key refusal with its answer key, for
/// the nonce of the request; a v1 request is refused. The statements match independent vectors.
/// </summary>
public sealed class SignedAnswerServerTests
{
    [Fact]
    public async Task A_v1_request_is_400_unsupported_protocol_version()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        using var device = HpkeKeyPair.Generate();
        string key = TestServer.Base64Url(device.PublicKey.Encoded.Span);
        Licence licence = await server.CreateLicenceAsync(admin, "alice", ["m"]);
        string token = await server.LicenceTokenAsync(licence);

        Api v1 = await server.PostAsync("/v1/keys/release", new { modelId = "m", version = "latest", devicePublicKey = key }, token);
        v1.AssertProblem(HttpStatusCode.BadRequest, "unsupported-protocol-version");
        Assert.Contains("protocol 2", v1.Json.GetProperty("detail").GetString(), StringComparison.Ordinal);
        (await server.PostAsync("/v1/keys/release", new { modelId = "m", version = "latest", devicePublicKey = key, nonce = ServerClient.Nonce(), protocol = 1 }, token)).AssertProblem(HttpStatusCode.BadRequest, "unsupported-protocol-version");
        (await server.PostAsync("/v1/admin/models/m/versions", new { publisherPublicKey = key }, admin)).AssertProblem(HttpStatusCode.BadRequest, "unsupported-protocol-version");

        Api noNonce = await server.PostAsync("/v1/keys/release", new { modelId = "m", version = "latest", devicePublicKey = key, nonce = "AAAA", protocol = 2 }, token);
        noNonce.AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        Assert.True(noNonce.Json.GetProperty("errors").TryGetProperty("nonce", out _));
    }

    [Fact]
    public async Task Releases_and_refusals_are_signed_for_the_request_by_the_published_answer_key()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        Licence licence = await server.CreateLicenceAsync(admin, "alice", ["m"]);
        string token = await server.LicenceTokenAsync(licence);
        using AnswerKey answerKey = await AnswerKeyAsync(server);
        using var device = HpkeKeyPair.Generate();
        byte[] nonce = RandomNumberGenerator.GetBytes(16);

        Api released = await server.PostAsync("/v1/keys/release", Body("m", "latest", device, nonce), token);
        released.AssertStatus(HttpStatusCode.OK);
        Release release = Release.From(released);
        Assert.Equal(answerKey.KeyId, released.Json.GetProperty("kid").GetString());
        byte[] statement = SignedAnswers.Released(nonce, device.PublicKey.Encoded.Span, "m", release.Version, release.KeyId, "alice", release.LeaseExpiresAt, release.Enc, release.SealedKey);
        Assert.True(SignedAnswers.Verify(answerKey.PublicKey, statement, released.Json.GetProperty("signature").GetString()));
        // For another nonce (a replay) or another lease expiry (an extension) the same signature does not verify.
        Assert.False(SignedAnswers.Verify(answerKey.PublicKey, SignedAnswers.Released(new byte[16], device.PublicKey.Encoded.Span, "m", release.Version, release.KeyId, "alice", release.LeaseExpiresAt, release.Enc, release.SealedKey), released.Json.GetProperty("signature").GetString()));
        Assert.False(SignedAnswers.Verify(answerKey.PublicKey, SignedAnswers.Released(nonce, device.PublicKey.Encoded.Span, "m", release.Version, release.KeyId, "alice", release.LeaseExpiresAt.AddYears(70), release.Enc, release.SealedKey), released.Json.GetProperty("signature").GetString()));

        Api refused = await server.PostAsync("/v1/keys/release", Body("other", "latest", device, nonce), token);
        refused.AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");
        Assert.Equal(answerKey.KeyId, refused.Json.GetProperty("kid").GetString());
        Assert.True(SignedAnswers.Verify(answerKey.PublicKey, SignedAnswers.Refused(nonce, device.PublicKey.Encoded.Span, "other", "latest", "alice", "model-not-licensed"), refused.Json.GetProperty("signature").GetString()));

        // An unauthenticated refusal says nothing about the licence: never signed.
        Api unauthorized = await server.PostAsync("/v1/keys/release", Body("m", "latest", device, nonce), token + "x");
        unauthorized.AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.False(unauthorized.Json.TryGetProperty("signature", out _));
    }

    [Fact]
    public async Task A_token_refusal_is_signed_only_for_a_request_with_a_nonce_and_never_for_401()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        Licence licence = await server.CreateLicenceAsync(admin, "alice", ["m"]);
        (await server.PostAsync($"/v1/admin/licences/{licence.Id}/revoke", null, admin)).AssertStatus(HttpStatusCode.OK);
        using AnswerKey answerKey = await AnswerKeyAsync(server);
        byte[] nonce = RandomNumberGenerator.GetBytes(16);

        Api signed = await server.PostAsync("/v1/token", new { grantType = "licence", licenceId = licence.Id, credential = licence.Credential, nonce = Base64Url.EncodeToString(nonce) });
        signed.AssertProblem(HttpStatusCode.Forbidden, "licence-revoked");
        Assert.True(SignedAnswers.Verify(answerKey.PublicKey, SignedAnswers.TokenRefusedStatement(nonce, licence.Id, "licence-revoked"), signed.Json.GetProperty("signature").GetString()));

        Api unsigned = await server.PostAsync("/v1/token", new { grantType = "licence", licenceId = licence.Id, credential = licence.Credential });
        unsigned.AssertProblem(HttpStatusCode.Forbidden, "licence-revoked");
        Assert.False(unsigned.Json.TryGetProperty("signature", out _));

        Api wrong = await server.PostAsync("/v1/token", new { grantType = "licence", licenceId = licence.Id, credential = "wrong", nonce = Base64Url.EncodeToString(nonce) });
        wrong.AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.False(wrong.Json.TryGetProperty("signature", out _));
    }

    [Fact]
    public void The_encoder_matches_the_independent_vectors_and_their_signatures_verify()
    {
        using JsonDocument document = JsonDocument.Parse(File.ReadAllText(RepoPaths.Vectors("modelseal", "signed-answers.json")));
        var jwks = new JwksResponse([JsonSerializer.Deserialize(document.RootElement.GetProperty("answerKey").GetRawText(), ProtocolJson.Default.PublicJwk)!]);
        using AnswerKey key = SignedAnswers.FindAnswerKey(jwks, document.RootElement.GetProperty("answerKey").GetProperty("kid").GetString())!;
        int checkedCases = 0;
        foreach (JsonElement v in document.RootElement.GetProperty("cases").EnumerateArray())
        {
            byte[] nonce = Convert.FromHexString(v.GetProperty("nonce").GetString()!);
            byte[] statement = v.GetProperty("kind").GetString() switch
            {
                "released" => SignedAnswers.Released(
                    nonce, Hex(v, "recipientKey"), Text(v, "modelId"), Text(v, "version"), Text(v, "keyId"), Text(v, "subject"),
                    DateTimeOffset.Parse(Text(v, "leaseExpiresAt"), System.Globalization.CultureInfo.InvariantCulture), Hex(v, "enc"), Hex(v, "sealedKey")),
                "refused" => SignedAnswers.Refused(nonce, Hex(v, "recipientKey"), Text(v, "modelId"), Text(v, "version"), Text(v, "subject"), Text(v, "problemCode")),
                "token-refused" => SignedAnswers.TokenRefusedStatement(nonce, Text(v, "licenceId"), Text(v, "problemCode")),
                var other => throw new InvalidOperationException(other),
            };

            Assert.Equal(v.GetProperty("statement").GetString(), Convert.ToHexStringLower(statement));
            string signature = Base64Url.EncodeToString(Hex(v, "signature"));
            Assert.Equal(v.GetProperty("valid").GetBoolean(), SignedAnswers.Verify(key.PublicKey, statement, signature));
            checkedCases++;
        }

        Assert.Equal(4, checkedCases);
    }

    private static object Body(string modelId, string version, HpkeKeyPair device, byte[] nonce) =>
        new { modelId, version, devicePublicKey = TestServer.Base64Url(device.PublicKey.Encoded.Span), nonce = Base64Url.EncodeToString(nonce), protocol = 2 };

    private static async Task<AnswerKey> AnswerKeyAsync(TestServer server)
    {
        Api jwks = await server.GetAsync("/.well-known/jwks.json");
        return SignedAnswers.FindAnswerKey(JsonSerializer.Deserialize(jwks.Text, ProtocolJson.Default.JwksResponse)!, null)!;
    }

    private static byte[] Hex(JsonElement v, string name) => Convert.FromHexString(v.GetProperty(name).GetString()!);

    private static string Text(JsonElement v, string name) => v.GetProperty(name).GetString()!;
}
