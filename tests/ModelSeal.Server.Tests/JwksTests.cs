using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Protocol;
using ModelSeal.Hpke;
using ModelSeal.Server.Endpoints;
using ModelSeal.Server.Security;

namespace ModelSeal.Server.Tests;

/// <summary><c>GET /.well-known/jwks.json</c> (docs/protocol.md section 1): the server's token key as a JWK Set.</summary>
public sealed class JwksTests
{
    private static readonly string[] SetMembers = ["keys"];
    private static readonly string[] KeyMembers = ["alg", "crv", "kid", "kty", "purpose", "use", "x", "y"];

    [Fact]
    public async Task The_JWKS_holds_exactly_the_documented_members_the_token_key_and_the_answer_key()
    {
        await using TestServer server = await TestServer.StartAsync();
        TokenIssuer tokens = server.App.Services.GetRequiredService<TokenIssuer>();
        SigningKeys signing = server.App.Services.GetRequiredService<SigningKeys>();

        Api answer = await server.GetAsync(JwksApi.Path);

        answer.AssertStatus(HttpStatusCode.OK);
        Assert.Equal("application/json", answer.ContentType);
        Assert.Equal("public, max-age=300", answer.Headers.CacheControl?.ToString());
        Assert.Equal(SetMembers, answer.Json.EnumerateObject().Select(p => p.Name));
        JsonElement[] keys = [.. answer.Json.GetProperty("keys").EnumerateArray()];
        Assert.Equal(2, keys.Length);
        Assert.Equal([PublicJwk.TokenPurpose, PublicJwk.AnswerPurpose], keys.Select(k => k.GetProperty("purpose").GetString()));
        Assert.Equal(signing.Answer.KeyId, keys[1].GetProperty("kid").GetString());
        Assert.NotEqual(tokens.KeyId, signing.Answer.KeyId);
        JsonElement key = keys[0];
        Assert.Equal(KeyMembers, key.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal("EC", key.GetProperty("kty").GetString());
        Assert.Equal("P-256", key.GetProperty("crv").GetString());
        Assert.Equal("ES256", key.GetProperty("alg").GetString());
        Assert.Equal("sig", key.GetProperty("use").GetString());
        Assert.Equal(tokens.KeyId, key.GetProperty("kid").GetString());

        byte[] x = System.Buffers.Text.Base64Url.DecodeFromChars(key.GetProperty("x").GetString());
        byte[] y = System.Buffers.Text.Base64Url.DecodeFromChars(key.GetProperty("y").GetString());
        Assert.Equal(32, x.Length);
        Assert.Equal(32, y.Length);
        ECParameters expected = tokens.SecurityKey.ECDsa.ExportParameters(includePrivateParameters: false);
        Assert.Equal(LeftPad(expected.Q.X!), x);
        Assert.Equal(LeftPad(expected.Q.Y!), y);
        Assert.Equal(tokens.KeyId, HpkePublicKey.Import([0x04, .. x, .. y]).Thumbprint);
    }

    [Fact]
    public async Task The_JWKS_is_anonymous_and_in_the_OpenAPI_document()
    {
        await using TestServer server = await TestServer.StartAsync();
        Api openApi = await server.GetAsync("/openapi/v1.json");

        JsonElement get = openApi.Json.GetProperty("paths").GetProperty(JwksApi.Path).GetProperty("get");
        Assert.Equal("GetJwks", get.GetProperty("operationId").GetString());
        Assert.Contains("Discovery", get.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
        Assert.True(get.GetProperty("responses").GetProperty("200").GetProperty("content").TryGetProperty("application/json", out _));
        string[] schemaMembers = [.. openApi.Json.GetProperty("components").GetProperty("schemas").GetProperty(nameof(PublicJwk)).GetProperty("properties").EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal)];
        Assert.Equal(KeyMembers, schemaMembers);
    }

    [Fact]
    public void A_short_coordinate_is_left_padded_to_32_bytes()
    {
        byte[] shortX = [.. Enumerable.Repeat((byte)0xAB, 31)];
        byte[] y = [.. Enumerable.Repeat((byte)0xCD, 32)];

        PublicJwk jwk = Jwks.EcP256Signing(new ECParameters { Q = new ECPoint { X = shortX, Y = y }, D = [1, 2, 3] }, "kid-1", PublicJwk.TokenPurpose);

        Assert.Equal([0x00, .. shortX], System.Buffers.Text.Base64Url.DecodeFromChars(jwk.X));
        Assert.Equal(y, System.Buffers.Text.Base64Url.DecodeFromChars(jwk.Y));
        Assert.Equal(new PublicJwk("EC", "P-256", jwk.X, jwk.Y, "kid-1", "ES256", "sig", PublicJwk.TokenPurpose), jwk);
    }

    [Fact]
    public async Task Jose_verifies_a_server_token_using_only_the_published_JWKS()
    {
        await using TestServer server = await TestServer.StartAsync();
        string token = await LicenceTokenAsync(server);

        NodeJose.Outcome outcome = await NodeJose.VerifyAsync(new Uri(server.Address, JwksApi.Path), token, server.Options.Issuer, server.Options.Audience);

        Assert.True(outcome.ExitCode == 0, $"jose rejected a server token: {outcome}");
        using var verified = JsonDocument.Parse(outcome.Output);
        JsonElement header = verified.RootElement.GetProperty("protectedHeader");
        Assert.Equal("ES256", header.GetProperty("alg").GetString());
        Assert.Equal(server.App.Services.GetRequiredService<TokenIssuer>().KeyId, header.GetProperty("kid").GetString());
        JsonElement payload = verified.RootElement.GetProperty("payload");
        Assert.Equal("alice", payload.GetProperty("sub").GetString());
        Assert.Equal(TokenClaims.ScopeKeys, payload.GetProperty("scope").GetString());
        Assert.StartsWith("lic_", payload.GetProperty(TokenClaims.Licence).GetString(), StringComparison.Ordinal);
        Assert.Equal(server.Options.Issuer, payload.GetProperty("iss").GetString());
        Assert.Equal(server.Options.Audience, payload.GetProperty("aud").GetString());
        Assert.True(payload.GetProperty("exp").GetInt64() > payload.GetProperty("iat").GetInt64());
    }

    [Fact]
    public async Task Jose_rejects_a_server_token_with_one_altered_payload_character()
    {
        await using TestServer server = await TestServer.StartAsync();
        string token = await LicenceTokenAsync(server);
        string[] parts = token.Split('.');
        char[] payload = parts[1].ToCharArray();
        int middle = payload.Length / 2;
        payload[middle] = payload[middle] == 'A' ? 'B' : 'A';
        string altered = string.Join('.', parts[0], new string(payload), parts[2]);

        NodeJose.Outcome outcome = await NodeJose.VerifyAsync(new Uri(server.Address, JwksApi.Path), altered, server.Options.Issuer, server.Options.Audience);

        Assert.True(outcome.ExitCode == 1, $"jose did not reject an altered token: {outcome}");
        Assert.Contains("ERR_JWS_SIGNATURE_VERIFICATION_FAILED", outcome.Error, StringComparison.Ordinal);
        Assert.Empty(outcome.Output);
    }

    private static async Task<string> LicenceTokenAsync(TestServer server)
    {
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "jwks-model");
        Licence licence = await server.CreateLicenceAsync(admin, "alice", ["jwks-model"]);
        return await server.LicenceTokenAsync(licence);
    }

    private static byte[] LeftPad(byte[] coordinate) => [.. new byte[32 - coordinate.Length], .. coordinate];
}
