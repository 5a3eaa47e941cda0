using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelSeal.Hpke;

namespace ModelSeal.Server.Tests;

/// <summary>
/// Forged, altered and misdirected tokens: every one is 401 with a ProblemDetails body. The server's own key signs the
/// tokens that must be accepted: read from token-signing.key, which exists with the file master-key provider only (with
/// PKCS#11 the key is in the token, Pkcs11SigningKeyTests).
/// </summary>
[Trait("MasterKey", "file")]
public sealed class JwtAttackTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private Licence _licence = null!;
    private string _validToken = null!;
    private HpkeKeyPair _device = null!;
    private ECDsa _serverKey = null!;
    private string _kid = null!;

    public async ValueTask InitializeAsync()
    {
        _server = await TestServer.StartAsync();
        string admin = await _server.AdminTokenAsync();
        await _server.CreateModelAsync(admin, "m");
        (await _server.CreateVersionAsync(admin, "m")).Key.Dispose();
        _licence = await _server.CreateLicenceAsync(admin, "customer", ["m"]);
        _validToken = await _server.LicenceTokenAsync(_licence);
        _device = HpkeKeyPair.Generate();
        _serverKey = ECDsa.Create();
        _serverKey.ImportFromPem(await File.ReadAllTextAsync(Path.Combine(_server.DataDirectory, "token-signing.key")));
        _kid = Header(_validToken).GetProperty("kid").GetString()!;
    }

    public async ValueTask DisposeAsync()
    {
        _device.Dispose();
        _serverKey.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task The_issued_token_has_the_documented_shape_and_works()
    {
        JsonElement header = Header(_validToken);
        Assert.Equal("ES256", header.GetProperty("alg").GetString());
        using (ECDsa publicKey = ECDsa.Create(_serverKey.ExportParameters(false)))
        {
            ECParameters p = publicKey.ExportParameters(false);
            Assert.Equal(HpkePublicKey.Import([0x04, .. p.Q.X!, .. p.Q.Y!]).Thumbprint, _kid);
        }

        JsonElement claims = Payload(_validToken);
        Assert.Equal(_licence.Subject, claims.GetProperty("sub").GetString());
        Assert.Equal("keys", claims.GetProperty("scope").GetString());
        Assert.Equal(_licence.Id, claims.GetProperty("lic").GetString());
        Assert.Equal("modelseal:server", claims.GetProperty("iss").GetString());
        Assert.Equal("modelseal", claims.GetProperty("aud").GetString());
        Assert.False(string.IsNullOrEmpty(claims.GetProperty("jti").GetString()));
        long iat = claims.GetProperty("iat").GetInt64();
        Assert.Equal(iat, claims.GetProperty("nbf").GetInt64());
        Assert.Equal(iat + 900, claims.GetProperty("exp").GetInt64());
        await AssertAcceptedAsync(_validToken);

        // And a token forged here with the server's own key is accepted too: the attacks below differ in one thing only.
        await AssertAcceptedAsync(Forge());
    }

    [Fact]
    public async Task A_missing_or_malformed_token_is_401()
    {
        Api missing = await _server.ReleaseAsync(null!, "m", "latest", _device);
        missing.AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Equal("Bearer", missing.Headers.WwwAuthenticate.Single().Scheme);
        await AssertRejectedAsync("not-a-jwt");
        await AssertRejectedAsync("a.b.c");
        await AssertRejectedAsync(string.Empty + _validToken[..^10]);
    }

    [Fact]
    public async Task Alg_none_is_401()
    {
        string header = Encode(new JsonObject { ["alg"] = "none", ["typ"] = "JWT", ["kid"] = _kid });
        string payload = Encode(Claims());
        await AssertRejectedAsync($"{header}.{payload}.");
        await AssertRejectedAsync($"{Encode(new JsonObject { ["alg"] = "none" })}.{payload}.");
    }

    [Fact]
    public async Task HS256_keyed_with_the_public_key_is_401()
    {
        ECParameters p = _serverKey.ExportParameters(false);
        byte[] point = [0x04, .. p.Q.X!, .. p.Q.Y!];
        byte[] spki = _serverKey.ExportSubjectPublicKeyInfo();
        byte[] pem = Encoding.ASCII.GetBytes(_serverKey.ExportSubjectPublicKeyInfoPem());
        foreach (byte[] secret in new[] { point, spki, pem, Encoding.ASCII.GetBytes(TestServer.Base64Url(point)) })
        {
            string signingInput = $"{Encode(new JsonObject { ["alg"] = "HS256", ["typ"] = "JWT", ["kid"] = _kid })}.{Encode(Claims())}";
            string signature = TestServer.Base64Url(HMACSHA256.HashData(secret, Encoding.ASCII.GetBytes(signingInput)));
            await AssertRejectedAsync($"{signingInput}.{signature}");
        }
    }

    [Fact]
    public async Task A_signature_by_another_key_with_the_same_kid_is_401()
    {
        using ECDsa attacker = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        await AssertRejectedAsync(Forge(signer: attacker));
    }

    [Fact]
    public async Task Expired_and_not_yet_valid_tokens_are_401()
    {
        long now = _server.Now.ToUnixTimeSeconds();
        await AssertRejectedAsync(Forge(Claims(iat: now - 3600, nbf: now - 3600, exp: now - 31)));
        await AssertRejectedAsync(Forge(Claims(iat: now, nbf: now + 120, exp: now + 900)));
        await AssertRejectedAsync(Forge(Claims(iat: now, nbf: now, exp: null)));

        // Within the 30 s clock skew both are still fine.
        await AssertAcceptedAsync(Forge(Claims(iat: now - 3600, nbf: now - 3600, exp: now - 20)));
        await AssertAcceptedAsync(Forge(Claims(iat: now, nbf: now + 20, exp: now + 900)));
    }

    [Fact]
    public async Task Wrong_issuer_audience_or_kid_is_401()
    {
        await AssertRejectedAsync(Forge(Claims(iss: "https://evil.example")));
        await AssertRejectedAsync(Forge(Claims(iss: null)));
        await AssertRejectedAsync(Forge(Claims(aud: "someone-else")));
        await AssertRejectedAsync(Forge(Claims(aud: null)));
        await AssertRejectedAsync(Forge(kid: "unknown-kid"));
        await AssertRejectedAsync(Forge(kid: null));
    }

    [Fact]
    public async Task A_token_altered_after_signing_is_401()
    {
        string[] parts = _validToken.Split('.');
        foreach ((string claim, string value) in new[] { ("scope", "keys admin"), ("sub", "another-customer"), ("lic", "lic_other") })
        {
            var claims = JsonNode.Parse(System.Buffers.Text.Base64Url.DecodeFromChars(parts[1]))!.AsObject();
            claims[claim] = value;
            await AssertRejectedAsync($"{parts[0]}.{Encode(claims)}.{parts[2]}");
        }

        // The header too: a different kid or alg under the original signature.
        var header = JsonNode.Parse(System.Buffers.Text.Base64Url.DecodeFromChars(parts[0]))!.AsObject();
        header["alg"] = "ES384";
        await AssertRejectedAsync($"{Encode(header)}.{parts[1]}.{parts[2]}");

        // A flipped signature bit.
        byte[] signature = System.Buffers.Text.Base64Url.DecodeFromChars(parts[2]);
        signature[5] ^= 1;
        await AssertRejectedAsync($"{parts[0]}.{parts[1]}.{TestServer.Base64Url(signature)}");
    }

    [Fact]
    public async Task A_token_without_sub_is_401()
    {
        JsonObject claims = Claims();
        claims.Remove("sub");
        await AssertRejectedAsync(Forge(claims));
    }

    [Fact]
    public async Task A_valid_token_without_the_scope_is_403()
    {
        foreach (string path in new[] { "/v1/admin/models", "/v1/admin/licences", "/v1/admin/audit" })
        {
            (await _server.GetAsync(path, _validToken)).AssertProblem(HttpStatusCode.Forbidden, "forbidden");
        }

        (await _server.PostAsync("/v1/admin/master-key/rotate", null, _validToken)).AssertProblem(HttpStatusCode.Forbidden, "forbidden");
        (await _server.PostAsync("/v1/admin/models", new { modelId = "x" }, _validToken)).AssertProblem(HttpStatusCode.Forbidden, "forbidden");

        // An admin token cannot release keys, and a forged token with another scope gets nothing either.
        string admin = await _server.AdminTokenAsync();
        (await _server.ReleaseAsync(admin, "m", "latest", _device)).AssertProblem(HttpStatusCode.Forbidden, "forbidden");
        (await _server.ReleaseAsync(Forge(Claims(scope: "keysx read")), "m", "latest", _device)).AssertProblem(HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task Wrong_credentials_get_no_token()
    {
        (await _server.PostAsync("/v1/token", new { grantType = "admin", credential = "wrong-credential-wrong-credential" })).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        (await _server.PostAsync("/v1/token", new { grantType = "licence", licenceId = _licence.Id, credential = "wrong" })).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        (await _server.PostAsync("/v1/token", new { grantType = "licence", licenceId = "lic_none", credential = _licence.Credential })).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        (await _server.PostAsync("/v1/token", new { grantType = "licence", licenceId = _licence.Id, credential = _server.AdminCredential })).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        (await _server.PostAsync("/v1/token", new { grantType = "password", credential = "x" })).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
    }

    [Fact]
    public async Task A_crit_header_and_non_numeric_times_are_refused()
    {
        // RFC 7515 4.1.11: a token that requires an extension the server does not understand is refused.
        await AssertRejectedAsync(Forge(header: new JsonObject { ["crit"] = new JsonArray("b64"), ["b64"] = true }));
        await AssertRejectedAsync(Forge(header: new JsonObject { ["crit"] = new JsonArray("exp") }));

        // RFC 7519: exp, nbf and iat are NumericDates (JSON numbers), not strings that look like them.
        long now = _server.Now.ToUnixTimeSeconds();
        foreach (string claim in new[] { "exp", "nbf", "iat" })
        {
            JsonObject claims = Claims();
            claims[claim] = (claim == "exp" ? now + 600 : now).ToString(System.Globalization.CultureInfo.InvariantCulture);
            await AssertRejectedAsync(Forge(claims));
        }

        await AssertAcceptedAsync(Forge());
    }

    [Fact]
    public async Task Every_401_says_how_to_authenticate()
    {
        Api token = await _server.PostAsync("/v1/token", new { grantType = "admin", credential = "wrong-credential-wrong-credential" });
        token.AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Equal("ModelSeal-Credential realm=\"modelseal\"", token.Headers.WwwAuthenticate.ToString());
        Api missing = await _server.GetAsync("/v1/admin/models");
        missing.AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Equal("Bearer", missing.Headers.WwwAuthenticate.ToString());
    }

    // ---- helpers ------------------------------------------------------------------------------------------------

    private async Task AssertRejectedAsync(string token)
    {
        Api answer = await _server.ReleaseAsync(token, "m", "latest", _device);
        answer.AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.StartsWith("Bearer", answer.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        Assert.False(answer.Json.TryGetProperty("sealedKey", out _));
    }

    private async Task AssertAcceptedAsync(string token)
    {
        Api answer = await _server.ReleaseAsync(token, "m", "latest", _device);
        Assert.True(answer.Status == HttpStatusCode.OK, $"Expected 200, got {(int)answer.Status}: {answer.Text}");
        Release.From(answer).Open(_device, _licence.Subject).Dispose();
    }

    private JsonObject Claims(string? iss = "modelseal:server", string? aud = "modelseal", long? iat = 0, long? nbf = 0, long? exp = 0, string scope = "keys")
    {
        long now = _server.Now.ToUnixTimeSeconds();
        var claims = new JsonObject { ["sub"] = _licence.Subject, ["scope"] = scope, ["lic"] = _licence.Id, ["jti"] = Guid.NewGuid().ToString("N") };
        if (iss is not null)
        {
            claims["iss"] = iss;
        }

        if (aud is not null)
        {
            claims["aud"] = aud;
        }

        claims["iat"] = iat == 0 ? now : iat;
        claims["nbf"] = nbf == 0 ? now : nbf;
        if (exp is not null)
        {
            claims["exp"] = exp == 0 ? now + 600 : exp;
        }

        return claims;
    }

    private string Forge(JsonObject? claims = null, ECDsa? signer = null, string? kid = "", string alg = "ES256", JsonObject? header = null)
    {
        header ??= [];
        header["alg"] = alg;
        header["typ"] = "JWT";
        if (kid is not null)
        {
            header["kid"] = kid.Length == 0 ? _kid : kid;
        }

        string signingInput = $"{Encode(header)}.{Encode(claims ?? Claims())}";
        byte[] signature = (signer ?? _serverKey).SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        string token = $"{signingInput}.{TestServer.Base64Url(signature)}";
        Secrets.Add("forged token", token);
        return token;
    }

    private static string Encode(JsonNode node) => TestServer.Base64Url(Encoding.UTF8.GetBytes(node.ToJsonString()));

    private static JsonElement Header(string token) => JsonDocument.Parse(System.Buffers.Text.Base64Url.DecodeFromChars(token.Split('.')[0])).RootElement.Clone();

    private static JsonElement Payload(string token) => JsonDocument.Parse(System.Buffers.Text.Base64Url.DecodeFromChars(token.Split('.')[1])).RootElement.Clone();
}
