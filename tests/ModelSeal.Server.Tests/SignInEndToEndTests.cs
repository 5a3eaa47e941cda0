using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ModelSeal.Client;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Http;
using ModelSeal.Server.Tests.Oidc;

namespace ModelSeal.Server.Tests;

/// <summary>
/// The app's own sign-in end to end (issue 14): a real OpenID Connect provider (<see cref="OidcProvider"/>, tokens
/// through its authorization-code flow with PKCE), the key server trusting it by its discovery URL (the authority form
/// of TrustedIssuers; no JWKS exported by the test) and deciding by entitlement rules, and the client runtime with
/// <see cref="SignInTokenSource"/> — the app hands its user's token over through a callback, no credential anywhere.
/// The server runs on a <see cref="ManualTime"/> clock started at the real time, so that expiry and key refreshes happen
/// when the test moves it, never by waiting.
/// </summary>
public sealed class SignInEndToEndTests(SharedOidcProvider shared) : IClassFixture<SharedOidcProvider>, IDisposable
{
    private const string Rule = "ml-users";
    private const string ModelId = "classifier";
    private const string InvalidTokenDetail = "The bearer token is not valid (signature, issuer, audience, lifetime or key).";

    private readonly TempDirectory _client = new();

    public void Dispose() => _client.Dispose();

    [Fact]
    public async Task A_user_a_rule_covers_signs_in_gets_the_key_through_the_client_and_opens_the_model_with_no_credential_file()
    {
        OidcProvider provider = await shared.GetAsync();
        await using Deployment deployment = await Deployment.StartAsync(provider);
        OidcTokens tokens = await SignInAsync(provider, "alice");
        var callback = new Callback(_ => tokens.AccessToken);
        var logs = new LogCapture();
        await using ServiceProvider services = ClientFor(deployment, callback, logs);

        Assert.IsType<SignInTokenSource>(services.GetRequiredService<ITokenSource>());
        using (ModelKey key = await services.GetRequiredService<IModelKeySource>().GetKeyAsync(deployment.Header, TestContext.Current.CancellationToken))
        {
            using DecryptedModel model = await SealedModel.DecryptAsync(new MemoryStream(deployment.Sealed), key, cancellationToken: TestContext.Current.CancellationToken);
            Assert.True(model.Span.SequenceEqual(deployment.Original), "The model opened with the released key is the original.");
        }

        Assert.Equal([false], callback.Calls);
        Assert.Equal("user-alice", services.GetRequiredService<SignInTokenSource>().Subject);
        ModelLease? lease = await services.GetRequiredService<ILeaseCache>().GetAsync(ModelId, deployment.Header.ModelVersion, deployment.Header.KeyId, TestContext.Current.CancellationToken);
        Assert.Equal("user-alice", lease?.Subject);

        // Released under the rule, to the provider's user; audited with issuer, subject and rule; the user exists now.
        JsonElement record = await EntitlementTests.LastRecordAsync(deployment.Server, deployment.Admin);
        Assert.Equal(("key.released", "user-alice", provider.Issuer), (record.GetProperty("event").GetString(), record.GetProperty("subject").GetString(), record.GetProperty("issuer").GetString()));
        Assert.Equal(JsonValueKind.Null, record.GetProperty("licenceId").ValueKind);
        Assert.Equal(Rule, record.GetProperty("attributes").GetProperty("rule").GetString());
        JsonElement user = Assert.Single((await deployment.Server.GetAsync("/v1/admin/users", deployment.Admin)).Json.GetProperty("items").EnumerateArray());
        Assert.Equal((provider.Issuer, "user-alice", 1L), (user.GetProperty("issuer").GetString(), user.GetProperty("subject").GetString(), user.GetProperty("devices").GetInt64()));

        // No credential on this path: none configured, no credential file on the device and no token stored or logged.
        ModelSealClientOptions options = services.GetRequiredService<IOptions<ModelSealClientOptions>>().Value;
        Assert.Equal((null, null), (options.LicenceId, options.CredentialFile));
        string[] files = Directory.GetFiles(_client.Path, "*", SearchOption.AllDirectories);
        string leaseFile = Path.GetFileName(Assert.Single(Directory.GetFiles(_client.Sub("leases"), "*.lease.json")));
        Assert.Equal(
            new[] { Path.Combine("device", "device.key"), Path.Combine("leases", "answer-key.kid"), Path.Combine("leases", leaseFile) }.Order(StringComparer.Ordinal),
            files.Select(f => Path.GetRelativePath(_client.Path, f)).Order(StringComparer.Ordinal));
        string signature = tokens.AccessToken.Split('.')[2];
        Assert.DoesNotContain(files, f => File.ReadAllText(f).Contains(signature, StringComparison.Ordinal));
        Assert.DoesNotContain(logs.Lines, l => l.Contains(signature, StringComparison.Ordinal));
    }

    [Fact]
    public async Task After_the_provider_rotates_its_signing_key_the_next_tokens_with_the_new_kid_still_work()
    {
        await using OidcProvider provider = await OidcProvider.StartAsync();
        await using Deployment deployment = await Deployment.StartAsync(provider);
        string oldKid = provider.Kids[0];
        OidcTokens before = await SignInAsync(provider, "alice");
        OidcTokens beforeUnused = await SignInAsync(provider, "bob");
        Assert.Equal(oldKid, (string?)OidcProvider.ReadHeader(before.AccessToken)["kid"]);
        string token = before.AccessToken;
        var callback = new Callback(_ => token);
        await using ServiceProvider services = ClientFor(deployment, callback);
        IModelKeySource source = services.GetRequiredService<IModelKeySource>();
        (await source.GetKeyAsync(deployment.Header, TestContext.Current.CancellationToken)).Dispose();

        // The provider rotates: new tokens name the new kid, which the server has not fetched.
        IReadOnlyList<string> rotated = await provider.RotateKeysAsync();
        OidcTokens after = await SignInAsync(provider, "alice");
        Assert.Equal(rotated[0], (string?)OidcProvider.ReadHeader(after.AccessToken)["kid"]);
        Assert.NotEqual(oldKid, rotated[0]);
        Assert.False(deployment.Discovery.Current!.Holds(rotated[0]));

        // A minute on (MinimumRefreshInterval since the server's last fetch), the first token with the new kid has the
        // keys fetched again and is accepted at once: the client gets the key and the model opens.
        deployment.Time.Advance(TimeSpan.FromMinutes(1));
        token = after.AccessToken;
        using (ModelKey key = await source.GetKeyAsync(deployment.Header, TestContext.Current.CancellationToken))
        {
            using DecryptedModel model = await SealedModel.DecryptAsync(new MemoryStream(deployment.Sealed), key, cancellationToken: TestContext.Current.CancellationToken);
            Assert.True(model.Span.SequenceEqual(deployment.Original));
        }

        Assert.Equal([false, false], callback.Calls);
        Assert.Equal(2, deployment.Discovery.Attempts);
        Assert.True(deployment.Discovery.Current!.Holds(rotated[0]));
        Assert.Equal(Rule, (await EntitlementTests.LastRecordAsync(deployment.Server, deployment.Admin)).GetProperty("attributes").GetProperty("rule").GetString());

        // Another user's new token too, and a token of the old kid never presented before (the provider still
        // publishes that key after the new one), with no further fetch.
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (await deployment.Server.ReleaseAsync((await SignInAsync(provider, "bob")).AccessToken, ModelId, "latest", device)).AssertStatus(HttpStatusCode.OK);
        Assert.Equal(oldKid, (string?)OidcProvider.ReadHeader(beforeUnused.AccessToken)["kid"]);
        (await deployment.Server.ReleaseAsync(beforeUnused.AccessToken, ModelId, "latest", device)).AssertStatus(HttpStatusCode.OK);
        Assert.Equal(2, deployment.Discovery.Attempts);
    }

    [Fact]
    public async Task A_token_of_an_issuer_that_is_not_trusted_is_refused_401()
    {
        OidcProvider provider = await shared.GetAsync();
        await using OidcProvider untrusted = await OidcProvider.StartAsync();
        await using Deployment deployment = await Deployment.StartAsync(provider);
        OidcTokens tokens = await SignInAsync(untrusted, "alice");
        Assert.Equal(untrusted.Issuer, (string?)OidcProvider.ReadPayload(tokens.AccessToken)["iss"]);
        Assert.NotEqual(provider.Issuer, untrusted.Issuer);

        await AssertRefusedAsync(deployment, tokens.AccessToken, "SecurityTokenInvalidIssuerException");
    }

    [Fact]
    public async Task A_token_for_another_audience_is_refused_401()
    {
        OidcProvider provider = await shared.GetAsync();
        await using Deployment deployment = await Deployment.StartAsync(provider);
        OidcTokens tokens = await SignInAsync(provider, "alice", OidcProvider.OtherResource);
        Assert.Equal(OidcProvider.OtherResource, (string?)OidcProvider.ReadPayload(tokens.AccessToken)["aud"]);

        await AssertRefusedAsync(deployment, tokens.AccessToken, "SecurityTokenInvalidAudienceException");
    }

    [Fact]
    public async Task An_expired_token_is_refused_401_also_one_the_server_accepted_before()
    {
        OidcProvider provider = await shared.GetAsync();
        await using Deployment deployment = await Deployment.StartAsync(provider);
        OidcTokens accepted = await SignInAsync(provider, "alice");
        OidcTokens unused = await SignInAsync(provider, "bob");
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (await deployment.Server.ReleaseAsync(accepted.AccessToken, ModelId, "latest", device)).AssertStatus(HttpStatusCode.OK);

        // The server's clock passes exp (300 s after iat) and the 30 s of clock skew it allows.
        long exp = (long)OidcProvider.ReadPayload(unused.AccessToken)["exp"]!;
        deployment.Time.Now = DateTimeOffset.FromUnixTimeSeconds(exp) + TimeSpan.FromSeconds(31);

        await AssertRefusedAsync(deployment, accepted.AccessToken, "SecurityTokenInvalidLifetimeException");
        await AssertRefusedAsync(deployment, unused.AccessToken, "SecurityTokenInvalidLifetimeException");
    }

    [Fact]
    public async Task An_ID_token_is_refused_401_by_an_issuer_configured_for_access_tokens()
    {
        OidcProvider provider = await shared.GetAsync();
        OidcTokens tokens = await SignInAsync(provider, "alice");
        string idToken = tokens.IdToken!;
        Assert.Equal(OidcProvider.ClientId, (string?)OidcProvider.ReadPayload(idToken)["aud"]);
        Assert.NotEqual("at+jwt", (string?)OidcProvider.ReadHeader(idToken)["typ"]);

        // As configured: the ID token is for the app (aud = its client id), not for the key server.
        await using (Deployment deployment = await Deployment.StartAsync(provider))
        {
            await AssertRefusedAsync(deployment, idToken, "SecurityTokenInvalidAudienceException");
        }

        // Even with the app's client id among the audiences, only the kind tells them apart (typ is not at+jwt): refused.
        await using (Deployment deployment = await Deployment.StartAsync(provider, issuer => issuer.Audiences.Add(OidcProvider.ClientId)))
        {
            await AssertRefusedAsync(deployment, idToken, "the token's typ is not one accepted on this issuer's access tokens");
        }
    }

    [Fact]
    public async Task A_token_signed_with_an_algorithm_the_issuer_does_not_list_is_refused_401()
    {
        OidcProvider provider = await shared.GetAsync();
        await using Deployment deployment = await Deployment.StartAsync(provider);
        OidcTokens tokens = await SignInAsync(provider, "alice", OidcProvider.RsKeysResource);
        Assert.Equal("RS256", (string?)OidcProvider.ReadHeader(tokens.AccessToken)["alg"]);
        Assert.Equal(OidcProvider.KeysAudience, (string?)OidcProvider.ReadPayload(tokens.AccessToken)["aud"]);

        // The provider publishes the RSA key (its JWKS holds it), but the server keeps only keys usable with the listed
        // algorithms: no key for this token.
        Assert.Contains((string?)OidcProvider.ReadHeader(tokens.AccessToken)["kid"], provider.Kids);
        await AssertRefusedAsync(deployment, tokens.AccessToken, "SecurityTokenSignatureKeyNotFoundException");

        // The log says why (event 86), not that the issuer does not publish the key.
        Assert.Contains(deployment.Server.Logs.Lines, l => l.Contains("for an algorithm or key type not among this issuer's Algorithms", StringComparison.Ordinal));
        Assert.DoesNotContain(deployment.Server.Logs.Lines, l => l.Contains("which the issuer does not publish", StringComparison.Ordinal));

        // The same token is accepted where the issuer lists RS256: the algorithm alone decided.
        await using Deployment rs256 = await Deployment.StartAsync(provider, issuer => issuer.Algorithms = ["ES256", "RS256"]);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (await rs256.Server.ReleaseAsync(tokens.AccessToken, ModelId, "latest", device)).AssertStatus(HttpStatusCode.OK);
    }

    [Fact]
    public async Task A_user_no_rule_covers_is_refused_403_no_entitlement_signed_and_audited()
    {
        OidcProvider provider = await shared.GetAsync();
        await using Deployment deployment = await Deployment.StartAsync(provider);
        OidcTokens tokens = await SignInAsync(provider, "carol");
        Assert.Empty(OidcProvider.ReadPayload(tokens.AccessToken)["groups"]!.AsArray());

        using HpkeKeyPair device = HpkeKeyPair.Generate();
        Api answer = await deployment.Server.ReleaseAsync(tokens.AccessToken, ModelId, "latest", device);
        answer.AssertProblem(HttpStatusCode.Forbidden, "no-entitlement");
        Assert.Equal(JsonValueKind.String, answer.Json.GetProperty("signature").ValueKind);
        await AssertRefusalAuditedAsync(deployment, "user-carol");

        // Through the client: NoEntitlement, a signed (definitive) refusal; audited again.
        var callback = new Callback(_ => tokens.AccessToken);
        await using ServiceProvider services = ClientFor(deployment, callback);
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => services.GetRequiredService<IModelKeySource>().GetKeyAsync(deployment.Header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal((ModelKeyUnavailableReason.NoEntitlement, 403, "no-entitlement", true), (e.Reason, e.StatusCode, e.ProblemCode, e.IsSignedRefusal));
        Assert.Equal([false], callback.Calls);
        await AssertRefusalAuditedAsync(deployment, "user-carol");
    }

    [Fact]
    public async Task A_blocked_user_is_refused_403_user_blocked_signed_and_audited_and_the_client_drops_its_lease()
    {
        OidcProvider provider = await shared.GetAsync();
        await using Deployment deployment = await Deployment.StartAsync(provider);
        OidcTokens tokens = await SignInAsync(provider, "alice");
        var callback = new Callback(_ => tokens.AccessToken);
        await using ServiceProvider services = ClientFor(deployment, callback);
        IModelKeySource source = services.GetRequiredService<IModelKeySource>();
        (await source.GetKeyAsync(deployment.Header, TestContext.Current.CancellationToken)).Dispose();
        Assert.Single(Directory.GetFiles(_client.Sub("leases"), "*.lease.json"));

        long userId = Assert.Single((await deployment.Server.GetAsync("/v1/admin/users", deployment.Admin)).Json.GetProperty("items").EnumerateArray()).GetProperty("userId").GetInt64();
        (await deployment.Server.PostAsync($"/v1/admin/users/{userId}/block", null, deployment.Admin)).AssertStatus(HttpStatusCode.OK);

        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(deployment.Header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal((ModelKeyUnavailableReason.UserBlocked, 403, "user-blocked", true), (e.Reason, e.StatusCode, e.ProblemCode, e.IsDefinitiveRefusal));
        Assert.Empty(Directory.GetFiles(_client.Sub("leases"), "*.lease.json"));
        JsonElement record = await EntitlementTests.LastRecordAsync(deployment.Server, deployment.Admin);
        Assert.Equal(("key.refused", "user-blocked"), (record.GetProperty("event").GetString(), record.GetProperty("outcome").GetString()));
        Assert.Equal(("user-alice", provider.Issuer), (record.GetProperty("subject").GetString(), record.GetProperty("issuer").GetString()));
        Assert.Equal(JsonValueKind.Null, record.GetProperty("licenceId").ValueKind);
        Assert.Equal(ModelId, record.GetProperty("modelId").GetString());
        Assert.Equal(Rule, record.GetProperty("attributes").GetProperty("rule").GetString()); // the rule the user is under

        // Directly: the refusal is signed.
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        Api answer = await deployment.Server.ReleaseAsync(tokens.AccessToken, ModelId, "latest", device);
        answer.AssertProblem(HttpStatusCode.Forbidden, "user-blocked");
        Assert.Equal(JsonValueKind.String, answer.Json.GetProperty("signature").ValueKind);
    }

    [Fact]
    public async Task While_the_provider_is_down_tokens_signed_with_the_cached_keys_still_work()
    {
        await using OidcProvider provider = await OidcProvider.StartAsync();
        await using Deployment deployment = await Deployment.StartAsync(provider, issuer => issuer.AutomaticRefreshInterval = TimeSpan.FromMinutes(5));
        OidcTokens alice = await SignInAsync(provider, "alice");
        OidcTokens bob = await SignInAsync(provider, "bob");
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (await deployment.Server.ReleaseAsync(alice.AccessToken, ModelId, "latest", device)).AssertStatus(HttpStatusCode.OK);

        // The provider goes down, and the server's scheduled refresh finds it down: the keys fetched before stay.
        await provider.StopAsync();
        deployment.Time.Advance(TimeSpan.FromMinutes(5));
        await deployment.AttemptedAsync(2);
        Assert.Contains(deployment.Server.Logs.Lines, l => l.Contains($"Trusted issuer {provider.Issuer}: fetching", StringComparison.Ordinal) && l.Contains("keys fetched before stay in use", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.OK, (await deployment.Server.GetAsync("/health/ready")).Status);

        // A token the server has never seen (not remembered by its token cache), signed with a cached key: the client
        // gets the key and the model opens.
        var callback = new Callback(_ => bob.AccessToken);
        await using ServiceProvider services = ClientFor(deployment, callback);
        using ModelKey key = await services.GetRequiredService<IModelKeySource>().GetKeyAsync(deployment.Header, TestContext.Current.CancellationToken);
        using DecryptedModel model = await SealedModel.DecryptAsync(new MemoryStream(deployment.Sealed), key, cancellationToken: TestContext.Current.CancellationToken);
        Assert.True(model.Span.SequenceEqual(deployment.Original));
        Assert.Equal([false], callback.Calls);
    }

    [Fact]
    public async Task While_the_provider_is_down_a_token_with_a_kid_the_server_never_fetched_gets_a_clear_401()
    {
        await using OidcProvider provider = await OidcProvider.StartAsync();
        await using Deployment deployment = await Deployment.StartAsync(provider);

        // The provider rotates a key in, signs a token with it, and goes down before the server has fetched that key.
        IReadOnlyList<string> rotated = await provider.RotateKeysAsync();
        OidcTokens tokens = await SignInAsync(provider, "alice");
        string kid = rotated[0];
        Assert.Equal(kid, (string?)OidcProvider.ReadHeader(tokens.AccessToken)["kid"]);
        await provider.StopAsync();

        // The unknown kid has the server try the provider again (a minute after its last fetch): down, so 401, and the
        // server's log names the issuer and the kid.
        deployment.Time.Advance(TimeSpan.FromMinutes(1));
        await AssertRefusedAsync(deployment, tokens.AccessToken, "SecurityTokenSignatureKeyNotFoundException");
        Assert.Contains(deployment.Server.Logs.Lines, l => l.Contains($"Token of the trusted issuer {provider.Issuer} refused: it names the signing key kid {kid}, which the issuer does not publish", StringComparison.Ordinal));
        Assert.Contains(deployment.Server.Logs.Lines, l => l.Contains($"Trusted issuer {provider.Issuer}: fetching", StringComparison.Ordinal) && l.Contains("failed", StringComparison.Ordinal));
        Assert.False(deployment.Discovery.Current!.Holds(kid));

        // Back up: once MinimumRefreshInterval has passed again, the same token is accepted.
        await provider.RestartAsync();
        deployment.Time.Advance(TimeSpan.FromMinutes(1));
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (await deployment.Server.ReleaseAsync(tokens.AccessToken, ModelId, "latest", device)).AssertStatus(HttpStatusCode.OK);
    }

    /// <summary>
    /// Refused as a token, directly (401 unauthorized, the one detail, WWW-Authenticate, the server's log saying
    /// <paramref name="why"/>, nothing audited) and through the client (Unauthorized with 401, after asking the app's
    /// callback once more with forceRefresh, as after any 401).
    /// </summary>
    private async Task AssertRefusedAsync(Deployment deployment, string token, string why)
    {
        long records = (await EntitlementTests.LastRecordAsync(deployment.Server, deployment.Admin)).GetProperty("id").GetInt64();
        int rejected = deployment.Server.Logs.Lines.Count(l => l.Contains("Bearer token rejected: " + why, StringComparison.Ordinal));

        using HpkeKeyPair device = HpkeKeyPair.Generate();
        Api answer = await deployment.Server.ReleaseAsync(token, ModelId, "latest", device);
        answer.AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Equal(InvalidTokenDetail, answer.Json.GetProperty("detail").GetString());
        Assert.Equal("Bearer error=\"invalid_token\"", Assert.Single(answer.Headers.WwwAuthenticate).ToString());
        Assert.False(answer.Json.TryGetProperty("signature", out _), "A token refusal is not signed.");
        Assert.True(
            deployment.Server.Logs.Lines.Count(l => l.Contains("Bearer token rejected: " + why, StringComparison.Ordinal)) > rejected,
            $"The server's log does not say '{why}':\n{string.Join('\n', deployment.Server.Logs.Lines.Where(l => l.Contains("rejected", StringComparison.Ordinal)))}");

        var callback = new Callback(_ => token);
        using var client = new TempDirectory();
        await using ServiceProvider services = ClientFor(deployment, callback, directory: client);
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => services.GetRequiredService<IModelKeySource>().GetKeyAsync(deployment.Header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal((ModelKeyUnavailableReason.Unauthorized, 401, "unauthorized", false), (e.Reason, e.StatusCode, e.ProblemCode, e.IsSignedRefusal));
        Assert.Contains(InvalidTokenDetail, e.Message, StringComparison.Ordinal);
        Assert.Contains("TrustedIssuers", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(token.Split('.')[2], e.ToString(), StringComparison.Ordinal);
        Assert.Equal([false, true], callback.Calls);

        // A refusal before the release rules: not audited (docs/protocol.md section 4.2).
        Assert.Equal(records, (await EntitlementTests.LastRecordAsync(deployment.Server, deployment.Admin)).GetProperty("id").GetInt64());
    }

    /// <summary>The audit's last record is a no-entitlement refusal of the provider's <paramref name="subject"/>, decided by no rule or licence.</summary>
    private static async Task AssertRefusalAuditedAsync(Deployment deployment, string subject)
    {
        JsonElement record = await EntitlementTests.LastRecordAsync(deployment.Server, deployment.Admin);
        Assert.Equal(("key.refused", "no-entitlement"), (record.GetProperty("event").GetString(), record.GetProperty("outcome").GetString()));
        Assert.Equal((subject, deployment.Issuer), (record.GetProperty("subject").GetString(), record.GetProperty("issuer").GetString()));
        Assert.Equal(JsonValueKind.Null, record.GetProperty("licenceId").ValueKind);
        Assert.True(record.GetProperty("attributes").ValueKind == JsonValueKind.Null || !record.GetProperty("attributes").TryGetProperty("rule", out _), "No rule decided.");
    }

    /// <summary>Signs <paramref name="login"/> in at the provider; the tokens are secrets the server's log must not hold.</summary>
    private static async Task<OidcTokens> SignInAsync(OidcProvider provider, string login, string resource = OidcProvider.KeysResource)
    {
        OidcTokens tokens = await provider.SignInAsync(login, resource);
        Secrets.Add("OIDC access token", tokens.AccessToken);
        if (tokens.IdToken is not null)
        {
            Secrets.Add("OIDC ID token", tokens.IdToken);
        }

        return tokens;
    }

    /// <summary>The client runtime as an app that signs its users in registers it: no licence, no credential file.</summary>
    private ServiceProvider ClientFor(Deployment deployment, Callback callback, LogCapture? logs = null, TempDirectory? directory = null)
    {
        TempDirectory client = directory ?? _client;
        var services = new ServiceCollection();
        if (logs is not null)
        {
            services.AddLogging(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(logs));
        }

        services.AddModelSeal(o =>
        {
            o.ServerUrl = deployment.Server.Address.AbsoluteUri;
            o.DeviceKeyFile = client.Sub("device", "device.key");
            o.LeaseCacheDirectory = client.Sub("leases");
            o.MaxRetryAttempts = 0;
        });
        services.AddModelSealSignIn(callback.GetTokenAsync);
        return services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
    }

    /// <summary>The app's sign-in callback in a test: the token it hands over, and every call's <c>forceRefresh</c>.</summary>
    private sealed class Callback(Func<bool, string> token)
    {
        private readonly ConcurrentQueue<bool> _calls = new();

        public IReadOnlyList<bool> Calls => [.. _calls];

        public ValueTask<string> GetTokenAsync(bool forceRefresh, CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            _calls.Enqueue(forceRefresh);
            return ValueTask.FromResult(token(forceRefresh));
        }
    }

    /// <summary>
    /// A key server trusting <c>provider</c> by its authority (its discovery URL; access tokens for the key server's
    /// resource, ES256 only) with the rule <see cref="Rule"/> (group <c>ml-users</c>: alice and bob, not carol) for
    /// <see cref="ModelId"/>, whose first version seals the sample model; its keys fetched once.
    /// </summary>
    private sealed class Deployment : IAsyncDisposable
    {
        private Deployment(TestServer server, ManualTime time, string issuer, string admin, IssuerDiscovery discovery, SealedModelHeader header, byte[] sealedModel, byte[] original)
        {
            Server = server;
            Time = time;
            Issuer = issuer;
            Admin = admin;
            Discovery = discovery;
            Header = header;
            Sealed = sealedModel;
            Original = original;
        }

        public TestServer Server { get; }

        public ManualTime Time { get; }

        public string Issuer { get; }

        public string Admin { get; }

        public IssuerDiscovery Discovery { get; }

        public SealedModelHeader Header { get; }

        public byte[] Sealed { get; }

        public byte[] Original { get; }

        public static async Task<Deployment> StartAsync(OidcProvider provider, Action<TrustedIssuerOptions>? configure = null)
        {
            var time = new ManualTime(DateTimeOffset.UtcNow);
            var issuer = new TrustedIssuerOptions { Issuer = provider.Issuer, Authority = provider.Issuer, Audiences = [OidcProvider.KeysAudience], Algorithms = ["ES256"] };
            configure?.Invoke(issuer);
            TestServer server = await TestServer.StartAsync(o =>
            {
                o.Time = time;
                o.TrustedIssuers = [issuer];
                o.Entitlements.Rules = [new EntitlementRuleOptions { Name = Rule, Issuer = provider.Issuer, Groups = ["ml-users"], Models = [ModelId], MaxDevices = 3 }];
            });
            try
            {
                string admin = await server.AdminTokenAsync();
                await server.CreateModelAsync(admin, ModelId);
                (Release created, ModelKey key) = await server.CreateVersionAsync(admin, ModelId);
                byte[] original = await File.ReadAllBytesAsync(RepoPaths.SampleModel, TestContext.Current.CancellationToken);
                using var sealedModel = new MemoryStream();
                SealedModelHeader header;
                using (key)
                {
                    header = await SealedModel.SealAsync(new MemoryStream(original), sealedModel, key, new SealOptions { ModelId = ModelId, ModelVersion = created.Version }, cancellationToken: TestContext.Current.CancellationToken);
                }

                IssuerDiscovery discovery = server.App.Services.GetRequiredService<TrustedKeys>().DiscoveryOf(provider.Issuer)!;
                var deployment = new Deployment(server, time, provider.Issuer, admin, discovery, header, sealedModel.ToArray(), original);
                await deployment.AttemptedAsync(1);
                Assert.NotNull(discovery.Current);
                return deployment;
            }
            catch
            {
                await server.DisposeAsync();
                throw;
            }
        }

        /// <summary>Waits until the server reports <paramref name="attempts"/> fetches of the provider's keys done (at most 30 s).</summary>
        public async Task AttemptedAsync(int attempts)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(30));
            await Discovery.WaitForAttemptsAsync(attempts, timeout.Token);
        }

        public ValueTask DisposeAsync() => Server.DisposeAsync();
    }
}
