using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace ModelSeal.Server.Tests.Oidc;

/// <summary>
/// The test OpenID Connect provider itself (tests/oidc-provider, <see cref="OidcProvider"/>): what the key server's
/// tests rely on, checked with the ecosystem's own OpenID Connect libraries (discovery, JWKS, JWT validation) and no
/// key exported by the test.
/// </summary>
[Trait("Backends", "own")] // no key server backend is involved: the second CI pass (PostgreSQL, HSM) has nothing to add
public sealed class OidcProviderTests(SharedOidcProvider shared) : IClassFixture<SharedOidcProvider>
{
    [Fact]
    public async Task Sign_in_gives_a_JWT_access_token_for_the_resource_that_verifies_with_the_discovered_keys()
    {
        var started = Stopwatch.StartNew();
        await using OidcProvider provider = await OidcProvider.StartAsync();
        TimeSpan startTime = started.Elapsed;
        var signIn = Stopwatch.StartNew();
        OidcTokens tokens = await provider.SignInAsync("alice");
        TimeSpan first = signIn.Elapsed;
        signIn.Restart();
        const int Warm = 10;
        for (int i = 0; i < Warm; i++)
        {
            await provider.SignInAsync("bob");
        }

        TestContext.Current.SendDiagnosticMessage(
            $"OIDC provider: start {startTime.TotalMilliseconds:F0} ms (node to ready line {provider.LastStartDuration.TotalMilliseconds:F0} ms), " +
            $"first sign-in {first.TotalMilliseconds:F0} ms, then {signIn.Elapsed.TotalMilliseconds / Warm:F0} ms each");

        JsonObject header = OidcProvider.ReadHeader(tokens.AccessToken);
        Assert.Equal("at+jwt", (string?)header["typ"]);
        Assert.Equal("ES256", (string?)header["alg"]);
        Assert.Equal(provider.Kids[0], (string?)header["kid"]);

        JsonObject claims = OidcProvider.ReadPayload(tokens.AccessToken);
        Assert.Equal(provider.Issuer, (string?)claims["iss"]);
        Assert.Equal(OidcProvider.KeysAudience, (string?)claims["aud"]);
        Assert.Equal("user-alice", (string?)claims["sub"]);
        Assert.Equal(OidcProvider.ClientId, (string?)claims["client_id"]);
        Assert.Equal("keys", (string?)claims["scope"]);
        Assert.Equal("pro", (string?)claims["plan"]);
        Assert.Equal("acme", (string?)claims["tenant"]);
        Assert.Equal("alice@example.com", (string?)claims["email"]);
        Assert.Equal(["ml-users", "beta"], claims["groups"]!.AsArray().Select(g => (string?)g));
        Assert.Equal(300, (long)claims["exp"]! - (long)claims["iat"]!);
        Assert.Equal(300, tokens.ExpiresIn);

        OpenIdConnectConfiguration discovered = await DiscoverAsync(provider);
        Assert.Equal(provider.Issuer, discovered.Issuer);
        TokenValidationResult valid = await ValidateAsync(tokens.AccessToken, discovered, OidcProvider.KeysAudience, "at+jwt");
        Assert.True(valid.IsValid, valid.Exception?.ToString());

        // The check above can fail: one changed byte of the signature does.
        string forged = tokens.AccessToken[..^4] + (tokens.AccessToken[^4] == 'A' ? 'B' : 'A') + tokens.AccessToken[^3..];
        TokenValidationResult invalid = await ValidateAsync(forged, discovered, OidcProvider.KeysAudience, "at+jwt");
        Assert.False(invalid.IsValid);
        Assert.IsAssignableFrom<SecurityTokenInvalidSignatureException>(invalid.Exception);
    }

    [Fact]
    public async Task The_ID_token_is_for_the_client_not_typed_as_an_access_token_and_carries_the_account_claims()
    {
        OidcProvider provider = await shared.GetAsync();
        OidcTokens es = await provider.SignInAsync("bob");
        OidcTokens rs = await provider.SignInAsync("bob", clientId: OidcProvider.RsClientId);
        OpenIdConnectConfiguration discovered = await DiscoverAsync(provider);

        Assert.NotNull(es.IdToken);
        JsonObject header = OidcProvider.ReadHeader(es.IdToken);
        Assert.True(header["typ"] is null || (string?)header["typ"] == "JWT", $"typ {header["typ"]}");
        Assert.Equal("ES256", (string?)header["alg"]);
        JsonObject claims = OidcProvider.ReadPayload(es.IdToken);
        Assert.Equal(OidcProvider.ClientId, (string?)claims["aud"]);
        Assert.Equal(provider.Issuer, (string?)claims["iss"]);
        Assert.Equal("user-bob", (string?)claims["sub"]);
        Assert.Equal("free", (string?)claims["plan"]);
        Assert.Equal(["ml-users"], claims["groups"]!.AsArray().Select(g => (string?)g));
        TokenValidationResult valid = await ValidateAsync(es.IdToken, discovered, OidcProvider.ClientId, type: null);
        Assert.True(valid.IsValid, valid.Exception?.ToString());
        Assert.False((await ValidateAsync(es.IdToken, discovered, OidcProvider.ClientId, "at+jwt")).IsValid);

        Assert.NotNull(rs.IdToken);
        Assert.Equal("RS256", (string?)OidcProvider.ReadHeader(rs.IdToken)["alg"]);
        Assert.Equal(OidcProvider.RsClientId, (string?)OidcProvider.ReadPayload(rs.IdToken)["aud"]);
        Assert.True((await ValidateAsync(rs.IdToken, discovered, OidcProvider.RsClientId, type: null)).IsValid);

        OidcTokens noOpenId = await provider.SignInAsync("bob", scopes: ["keys"]);
        Assert.Null(noOpenId.IdToken);
    }

    [Fact]
    public async Task Each_resource_gives_its_audience_algorithm_and_lifetime()
    {
        OidcProvider provider = await shared.GetAsync();
        OpenIdConnectConfiguration discovered = await DiscoverAsync(provider);

        OidcTokens rs = await provider.SignInAsync("carol", OidcProvider.RsKeysResource);
        JsonObject rsHeader = OidcProvider.ReadHeader(rs.AccessToken);
        Assert.Equal("RS256", (string?)rsHeader["alg"]);
        Assert.Equal("at+jwt", (string?)rsHeader["typ"]);
        Assert.StartsWith("rsa-", (string?)rsHeader["kid"], StringComparison.Ordinal);
        Assert.Equal(OidcProvider.KeysAudience, (string?)OidcProvider.ReadPayload(rs.AccessToken)["aud"]);
        Assert.True((await ValidateAsync(rs.AccessToken, discovered, OidcProvider.KeysAudience, "at+jwt")).IsValid);

        OidcTokens other = await provider.SignInAsync("carol", OidcProvider.OtherResource, ["openid", "keys"]);
        Assert.Equal(OidcProvider.OtherResource, (string?)OidcProvider.ReadPayload(other.AccessToken)["aud"]);
        Assert.Equal("ES256", (string?)OidcProvider.ReadHeader(other.AccessToken)["alg"]);
        Assert.False((await ValidateAsync(other.AccessToken, discovered, OidcProvider.KeysAudience, "at+jwt")).IsValid);

        OidcTokens longLived = await provider.SignInAsync("carol", OidcProvider.LongKeysResource);
        JsonObject longClaims = OidcProvider.ReadPayload(longLived.AccessToken);
        Assert.Equal(2 * 24 * 3600, (long)longClaims["exp"]! - (long)longClaims["iat"]!);
        Assert.Equal(OidcProvider.KeysAudience, (string?)longClaims["aud"]);

        OidcTokens scoped = await provider.SignInAsync("carol", scopes: ["openid", "keys", "models", "admin"]);
        Assert.Equal("keys models admin", (string?)OidcProvider.ReadPayload(scoped.AccessToken)["scope"]);
    }

    [Fact]
    public async Task After_a_key_rotation_new_tokens_have_the_new_kid_and_the_JWKS_lists_old_and_new()
    {
        await using OidcProvider provider = await OidcProvider.StartAsync();
        string issuer = provider.Issuer;
        OidcTokens before = await provider.SignInAsync("alice");
        string oldKid = (string)OidcProvider.ReadHeader(before.AccessToken)["kid"]!;

        var rotation = Stopwatch.StartNew();
        IReadOnlyList<string> newKids = await provider.RotateKeysAsync();
        TestContext.Current.SendDiagnosticMessage($"OIDC provider: key rotation and restart {rotation.ElapsedMilliseconds} ms");

        Assert.Equal(issuer, provider.Issuer);
        OidcTokens after = await provider.SignInAsync("alice");
        string newKid = (string)OidcProvider.ReadHeader(after.AccessToken)["kid"]!;
        Assert.NotEqual(oldKid, newKid);
        Assert.Equal(newKids[0], newKid);
        Assert.Equal(newKid, (string?)OidcProvider.ReadHeader(after.IdToken!)["kid"]);
        Assert.Equal(newKids[1], (string?)OidcProvider.ReadHeader((await provider.SignInAsync("alice", OidcProvider.RsKeysResource)).AccessToken)["kid"]);

        OpenIdConnectConfiguration discovered = await DiscoverAsync(provider);
        string[] published = discovered.JsonWebKeySet.Keys.Select(k => k.Kid).ToArray();
        Assert.Contains(oldKid, published);
        Assert.Contains(newKid, published);
        Assert.All(discovered.JsonWebKeySet.Keys, k => Assert.False(k.HasPrivateKey, $"{k.Kid} is published with its private part"));
        Assert.True((await ValidateAsync(before.AccessToken, discovered, OidcProvider.KeysAudience, "at+jwt")).IsValid);
        Assert.True((await ValidateAsync(after.AccessToken, discovered, OidcProvider.KeysAudience, "at+jwt")).IsValid);
    }

    [Fact]
    public async Task Stopped_the_provider_is_unreachable_and_restarted_it_signs_in_again_on_the_same_issuer()
    {
        await using OidcProvider provider = await OidcProvider.StartAsync();
        string issuer = provider.Issuer;
        await provider.StopAsync();
        Assert.False(provider.IsRunning);
        Assert.Equal(0, provider.LastExitCode);
        using (var http = new HttpClient())
        {
            await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync(provider.DiscoveryUrl, TestContext.Current.CancellationToken));
        }

        InvalidOperationException down = await Assert.ThrowsAsync<InvalidOperationException>(() => provider.SignInAsync("alice"));
        Assert.Contains("not running", down.Message, StringComparison.Ordinal);

        await provider.RestartAsync();
        Assert.Equal(issuer, provider.Issuer);
        OidcTokens tokens = await provider.SignInAsync("alice");
        Assert.Equal(issuer, (string?)OidcProvider.ReadPayload(tokens.AccessToken)["iss"]);
    }

    [Fact]
    public async Task Unknown_logins_and_resources_are_refused_with_the_provider_s_error()
    {
        OidcProvider provider = await shared.GetAsync();
        InvalidOperationException login = await Assert.ThrowsAsync<InvalidOperationException>(() => provider.SignInAsync("mallory"));
        Assert.Contains("error=access_denied", login.Message, StringComparison.Ordinal);
        InvalidOperationException resource = await Assert.ThrowsAsync<InvalidOperationException>(() => provider.SignInAsync("alice", "urn:nobody"));
        Assert.Contains("invalid_target", resource.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Accounts_given_by_the_test_put_their_claims_in_the_tokens_as_they_are()
    {
        var accounts = new JsonObject
        {
            ["dave"] = new JsonObject { ["sub"] = "user-dave", ["plan"] = 42, ["groups"] = "not-a-list", ["tenant"] = new JsonObject { ["id"] = "t1" } },
        };
        await using OidcProvider provider = await OidcProvider.StartAsync(accounts);
        OidcTokens tokens = await provider.SignInAsync("dave");
        JsonObject claims = OidcProvider.ReadPayload(tokens.AccessToken);
        Assert.Equal("user-dave", (string?)claims["sub"]);
        Assert.Equal(42, (int)claims["plan"]!);
        Assert.Equal("not-a-list", (string?)claims["groups"]);
        Assert.Equal("t1", (string?)claims["tenant"]!["id"]);
        await Assert.ThrowsAsync<InvalidOperationException>(() => provider.SignInAsync("alice"));
    }

    /// <summary>The provider's discovery document and its JWKS, fetched as a relying party does.</summary>
    private static async Task<OpenIdConnectConfiguration> DiscoverAsync(OidcProvider provider)
    {
        var manager = new ConfigurationManager<OpenIdConnectConfiguration>(
            provider.DiscoveryUrl.AbsoluteUri, new OpenIdConnectConfigurationRetriever(), new HttpDocumentRetriever { RequireHttps = false });
        return await manager.GetConfigurationAsync(TestContext.Current.CancellationToken);
    }

    private static Task<TokenValidationResult> ValidateAsync(string token, OpenIdConnectConfiguration discovered, string audience, string? type) =>
        new JsonWebTokenHandler().ValidateTokenAsync(token, new TokenValidationParameters
        {
            ValidIssuer = discovered.Issuer,
            ValidAudience = audience,
            IssuerSigningKeys = discovered.SigningKeys,
            ValidTypes = type is null ? null : [type],
            ValidAlgorithms = ["ES256", "RS256"],
            RequireSignedTokens = true,
        });
}
