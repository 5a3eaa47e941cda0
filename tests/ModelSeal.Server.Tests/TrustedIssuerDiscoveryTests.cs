using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Http;

namespace ModelSeal.Server.Tests;

/// <summary>
/// Trusted issuers configured by Authority (docs/deploy.md "Trusted issuers"): the keys come from the issuer's discovery
/// document and JWKS, are fetched again for an unknown <c>kid</c> at most once per MinimumRefreshInterval, stay in use
/// while the issuer is down, and the server is not ready until each authority has been fetched once. The issuer here is
/// <see cref="DiscoveryIssuer"/>, which counts what it is asked; the server runs on a <see cref="ManualTime"/> clock, so
/// every refresh is caused by the test moving it and every wait is for a fetch the server reports finished.
/// </summary>
public sealed class TrustedIssuerDiscoveryTests
{
    private static readonly DateTimeOffset Start = new(2026, 12, 5, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Tokens_are_validated_with_the_keys_discovered_from_the_authority_under_the_issuers_rules()
    {
        await using DiscoveryIssuer idp = await DiscoveryIssuer.StartAsync("k1");
        await using TestServer server = await StartAsync(idp, new ManualTime(Start));
        IssuerDiscovery discovery = await FetchedAsync(server, idp, 1);

        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/ready")).Status);
        await AssertAcceptedAsync(server, idp.Sign(idp.Claims("alice", server.Now), "k1"));
        Assert.Equal((1, 1), (idp.DiscoveryRequests, idp.JwksRequests));
        Assert.Equal(1, discovery.Attempts);
        Assert.Contains(server.Logs.Lines, line => line.Contains($"keys discovered from {idp.Authority}/.well-known/openid-configuration", StringComparison.Ordinal));

        // The issuer's rules apply as with a JWKS file: typ, audience, lifetime, algorithm.
        await AssertRefusedAsync(server, idp.Sign(idp.Claims("alice", server.Now), "k1", typ: "JWT"));
        JsonObject otherAudience = idp.Claims("alice", server.Now);
        otherAudience["aud"] = "another-api";
        await AssertRefusedAsync(server, idp.Sign(otherAudience, "k1"));
        JsonObject longLived = idp.Claims("alice", server.Now);
        longLived["exp"] = server.Now.ToUnixTimeSeconds() + 7200;
        await AssertRefusedAsync(server, idp.Sign(longLived, "k1"));
        string es256 = idp.Sign(idp.Claims("bob", server.Now), "k1");
        string[] parts = es256.Split('.');
        string relabelled = ServerClient.Base64Url(System.Text.Encoding.UTF8.GetBytes("""{"alg":"PS256","kid":"k1","typ":"at+jwt"}""")) + "." + parts[1] + "." + parts[2];
        await AssertRefusedAsync(server, relabelled);

        // None of these asked the issuer again: k1 is known.
        Assert.Equal((1, 1), (idp.DiscoveryRequests, idp.JwksRequests));
    }

    [Fact]
    public async Task An_unknown_kid_fetches_the_keys_again_at_most_once_per_MinimumRefreshInterval()
    {
        var time = new ManualTime(Start);
        await using DiscoveryIssuer idp = await DiscoveryIssuer.StartAsync("k1");
        await using TestServer server = await StartAsync(idp, time, o => o.MinimumRefreshInterval = TimeSpan.FromMinutes(2));
        IssuerDiscovery discovery = await FetchedAsync(server, idp, 1);

        // The issuer rotates k2 in. Within MinimumRefreshInterval of the first fetch, k2 is not looked for: 401.
        idp.Publish("k1", "k2");
        await AssertRefusedAsync(server, idp.Sign(idp.Claims("alice", server.Now), "k2"));
        Assert.Equal(1, idp.JwksRequests);
        Assert.Contains(server.Logs.Lines, line => line.Contains($"Token of the trusted issuer {idp.Issuer} refused: it names the signing key kid k2", StringComparison.Ordinal));

        // Once it has passed, the first token with k2 has the keys fetched again and is accepted at once.
        time.Advance(TimeSpan.FromMinutes(2));
        await AssertAcceptedAsync(server, idp.Sign(idp.Claims("alice", server.Now), "k2"));
        Assert.Equal(2, idp.JwksRequests);

        // A kid the issuer does not publish: however many tokens, concurrent or not, no other fetch within the interval.
        await AssertRefusedAsync(server, idp.Sign(idp.Claims("mallory", server.Now), "forged"));
        await Task.WhenAll(Enumerable.Range(0, 8).Select(i => AssertRefusedAsync(server, idp.Sign(idp.Claims($"mallory-{i}", server.Now), $"forged-{i}"))));
        time.Advance(TimeSpan.FromMinutes(2) - TimeSpan.FromSeconds(1));
        await AssertRefusedAsync(server, idp.Sign(idp.Claims("mallory", server.Now), "forged"));
        Assert.Equal(2, idp.JwksRequests);

        // The interval over: one fetch for all of a burst of unknown kids.
        time.Advance(TimeSpan.FromSeconds(1));
        await Task.WhenAll(Enumerable.Range(0, 8).Select(i => AssertRefusedAsync(server, idp.Sign(idp.Claims($"mallory-{i}", server.Now), $"forged-{i}"))));
        Assert.Equal(3, idp.JwksRequests);
        Assert.Equal(3, discovery.Attempts);

        // Known keys never wait for a fetch.
        await AssertAcceptedAsync(server, idp.Sign(idp.Claims("bob", server.Now), "k1"));
        Assert.Equal(3, idp.JwksRequests);
    }

    [Fact]
    public async Task While_the_issuer_is_down_the_keys_fetched_before_stay_in_use_and_the_server_ready()
    {
        var time = new ManualTime(Start);
        await using DiscoveryIssuer idp = await DiscoveryIssuer.StartAsync("k1");
        await using TestServer server = await StartAsync(idp, time, o =>
        {
            o.AutomaticRefreshInterval = TimeSpan.FromMinutes(30);
            o.MinimumRefreshInterval = TimeSpan.FromMinutes(5);
        });
        IssuerDiscovery discovery = await FetchedAsync(server, idp, 1);

        // The scheduled refresh finds the issuer down.
        idp.Up = false;
        time.Advance(TimeSpan.FromMinutes(30));
        await AttemptedAsync(discovery, 2);
        Assert.Equal(1, idp.JwksRequests);
        Assert.Contains(server.Logs.Lines, line => line.Contains($"Trusted issuer {idp.Issuer}: fetching", StringComparison.Ordinal) && line.Contains("The 1 keys fetched before stay in use", StringComparison.Ordinal));

        // Tokens signed with the cached key (new ones, not remembered by the token cache) are accepted; the server is ready.
        await AssertAcceptedAsync(server, idp.Sign(idp.Claims("carol", server.Now), "k1"));
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/ready")).Status);

        // An unknown kid then (within MinimumRefreshInterval of the failed fetch: not fetched for): the usual 401, and a
        // log line naming the issuer and the kid.
        time.Advance(TimeSpan.FromMinutes(1));
        await AssertRefusedAsync(server, idp.Sign(idp.Claims("carol", server.Now), "k9"));
        Assert.Equal(2, discovery.Attempts);
        Assert.Contains(server.Logs.Lines, line => line.Contains($"Token of the trusted issuer {idp.Issuer} refused: it names the signing key kid k9", StringComparison.Ordinal));

        // Back up: the retry MinimumRefreshInterval after the failure fetches again, and a key published meanwhile is in use.
        idp.Up = true;
        idp.Publish("k1", "k9");
        time.Advance(TimeSpan.FromMinutes(4));
        await AttemptedAsync(discovery, 3);
        await AssertAcceptedAsync(server, idp.Sign(idp.Claims("carol", server.Now), "k9"));
        Assert.Equal(2, idp.JwksRequests);
    }

    [Fact]
    public async Task An_issuer_unreachable_at_start_leaves_the_server_unready_and_its_tokens_refused_until_the_first_fetch()
    {
        var time = new ManualTime(Start);
        await using DiscoveryIssuer idp = await DiscoveryIssuer.StartAsync("k1");
        idp.Up = false;
        await using TestServer server = await StartAsync(idp, time);
        IssuerDiscovery discovery = await FetchedAsync(server, idp, 1);

        Assert.Null(discovery.Current);
        (await server.GetAsync("/health/ready")).AssertProblem(HttpStatusCode.ServiceUnavailable, "not-ready");
        Assert.Contains(server.Logs.Lines, line => line.StartsWith("Warning", StringComparison.Ordinal) && line.Contains($"Trusted issuer {idp.Issuer} has no keys yet: fetching {idp.Authority}/.well-known/openid-configuration failed", StringComparison.Ordinal));
        await AssertRefusedAsync(server, idp.Sign(idp.Claims("alice", server.Now), "k1"));
        Assert.Contains(server.Logs.Lines, line => line.Contains($"Token of the trusted issuer {idp.Issuer} refused: its keys have not been fetched yet", StringComparison.Ordinal));
        Assert.Equal(1, discovery.Attempts);

        // Retried after 1 s, then 2 s, …: the first success makes the server ready and the tokens valid.
        time.Advance(IssuerDiscovery.FirstRetry);
        await AttemptedAsync(discovery, 2);
        idp.Up = true;
        time.Advance(IssuerDiscovery.FirstRetry * 2);
        await AttemptedAsync(discovery, 3);
        Assert.NotNull(discovery.Current);
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/ready")).Status);
        await AssertAcceptedAsync(server, idp.Sign(idp.Claims("alice", server.Now), "k1"));
    }

    [Fact]
    public async Task Retries_before_the_first_success_back_off_up_to_MinimumRefreshInterval_and_go_on_at_it()
    {
        var time = new ManualTime(Start);
        await using DiscoveryIssuer idp = await DiscoveryIssuer.StartAsync("k1");
        idp.Up = false;
        await using TestServer server = await StartAsync(idp, time, o => o.MinimumRefreshInterval = TimeSpan.FromSeconds(4));
        IssuerDiscovery discovery = await FetchedAsync(server, idp, 1);

        // 1 s, 2 s, then 4 s (the interval) every time, however long the issuer stays down.
        int attempts = 1;
        foreach (int seconds in Enumerable.Repeat(1, 1).Append(2).Concat(Enumerable.Repeat(4, 70)))
        {
            time.Advance(TimeSpan.FromSeconds(seconds));
            await AttemptedAsync(discovery, ++attempts);
        }

        Assert.Null(discovery.Current);
        idp.Up = true;
        time.Advance(TimeSpan.FromSeconds(4));
        await AttemptedAsync(discovery, ++attempts);
        Assert.NotNull(discovery.Current);
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/ready")).Status);
    }

    [Fact]
    public async Task A_discovery_document_naming_another_issuer_is_refused_at_the_first_fetch_and_at_a_refresh()
    {
        var time = new ManualTime(Start);
        await using DiscoveryIssuer idp = await DiscoveryIssuer.StartAsync("k1");
        idp.DocumentIssuer = "https://impostor.example";
        await using TestServer server = await StartAsync(idp, time);
        IssuerDiscovery discovery = await FetchedAsync(server, idp, 1);

        Assert.Null(discovery.Current);
        Assert.Contains(server.Logs.Lines, line => line.Contains($"the discovery document names the issuer 'https://impostor.example', not '{idp.Issuer}' (TrustedIssuers:0:Issuer); its keys are refused", StringComparison.Ordinal));
        (await server.GetAsync("/health/ready")).AssertProblem(HttpStatusCode.ServiceUnavailable, "not-ready");
        await AssertRefusedAsync(server, idp.Sign(idp.Claims("alice", server.Now), "k1"));

        idp.DocumentIssuer = idp.Issuer;
        time.Advance(IssuerDiscovery.FirstRetry);
        await AttemptedAsync(discovery, 2);
        await AssertAcceptedAsync(server, idp.Sign(idp.Claims("alice", server.Now), "k1"));

        // At a refresh, a document for another issuer (with other keys) changes nothing: the keys before stay.
        idp.DocumentIssuer = "https://impostor.example";
        idp.Publish("evil");
        time.Advance(TimeSpan.FromHours(1));
        await AttemptedAsync(discovery, 3);
        await AssertAcceptedAsync(server, idp.Sign(idp.Claims("bob", server.Now), "k1"));
        Assert.True(discovery.Current!.Holds("k1"));
        Assert.False(discovery.Current.Holds("evil"));
    }

    [Fact]
    public async Task A_jwks_uri_that_is_plain_http_to_another_host_is_not_fetched()
    {
        var time = new ManualTime(Start);
        await using DiscoveryIssuer idp = await DiscoveryIssuer.StartAsync("k1");
        idp.JwksUri = "http://keys.example/jwks";
        await using TestServer server = await StartAsync(idp, time);
        IssuerDiscovery discovery = await FetchedAsync(server, idp, 1);

        Assert.Null(discovery.Current);
        Assert.Contains(server.Logs.Lines, line => line.Contains("refusing to fetch 'http://keys.example/jwks': only https:// (or http:// to a loopback host) is asked", StringComparison.Ordinal));
        (await server.GetAsync("/health/ready")).AssertProblem(HttpStatusCode.ServiceUnavailable, "not-ready");
    }

    [Fact]
    public async Task A_key_the_issuer_stops_publishing_is_no_longer_accepted_also_for_a_remembered_token()
    {
        var time = new ManualTime(Start);
        await using DiscoveryIssuer idp = await DiscoveryIssuer.StartAsync("k1", "k2");
        await using TestServer server = await StartAsync(idp, time);
        IssuerDiscovery discovery = await FetchedAsync(server, idp, 1);
        string token = idp.Sign(idp.Claims("alice", server.Now), "k1");
        await AssertAcceptedAsync(server, token);

        idp.Publish("k2");
        time.Advance(TimeSpan.FromHours(1));
        await AttemptedAsync(discovery, 2);
        await AssertRefusedAsync(server, token);
        await AssertAcceptedAsync(server, idp.Sign(idp.Claims("alice", server.Now), "k2"));
    }

    [Theory]
    [InlineData("http://idp.example", "TrustedIssuers:0:Authority")]
    [InlineData("http://10.0.0.5:8080", "TrustedIssuers:0:Authority")]
    [InlineData("ftp://idp.example", "TrustedIssuers:0:Authority")]
    [InlineData("idp.example", "TrustedIssuers:0:Authority")]
    [InlineData("https://idp.example/?tenant=1", "TrustedIssuers:0:Authority")]
    [InlineData("https://idp.example|JWKS", "both Authority and JwksFile")]
    [InlineData("", "neither Authority nor JwksFile")]
    [InlineData("https://idp.example|auto=00:04:59", "TrustedIssuers:0:AutomaticRefreshInterval")]
    [InlineData("https://idp.example|min=00:00:00", "TrustedIssuers:0:MinimumRefreshInterval")]
    [InlineData("https://idp.example|min=02:00:00", "TrustedIssuers:0:MinimumRefreshInterval")]
    public void An_authority_that_is_not_https_or_not_alone_is_refused_naming_the_key(string setting, string expected)
    {
        using var directory = new TempDirectory();
        using var file = new ExternalIssuer("https://idp.example", directory.Sub("jwks.json"));
        var issuer = new TrustedIssuerOptions { Issuer = "https://idp.example" };
        foreach (string part in setting.Split('|', StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == "JWKS")
            {
                issuer.JwksFile = file.JwksFile;
            }
            else if (part.StartsWith("auto=", StringComparison.Ordinal))
            {
                issuer.AutomaticRefreshInterval = TimeSpan.Parse(part[5..], System.Globalization.CultureInfo.InvariantCulture);
            }
            else if (part.StartsWith("min=", StringComparison.Ordinal))
            {
                issuer.MinimumRefreshInterval = TimeSpan.Parse(part[4..], System.Globalization.CultureInfo.InvariantCulture);
            }
            else
            {
                issuer.Authority = part;
            }
        }

        string data = directory.Sub("data");
        var e = Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(new ServerOptions { DataDirectory = data, Urls = "http://127.0.0.1:0", TrustedIssuers = [issuer] }));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(data), "Nothing is created before the configuration is valid.");
    }

    [Fact]
    public async Task Claims_of_unexpected_types_are_refused_never_a_5xx()
    {
        var time = new ManualTime(Start);
        await using DiscoveryIssuer idp = await DiscoveryIssuer.StartAsync("k1");
        await using TestServer server = await StartAsync(idp, time);
        await FetchedAsync(server, idp, 1);
        JsonObject With(string claim, JsonNode? value)
        {
            JsonObject claims = idp.Claims("alice", server.Now);
            claims[claim] = value;
            return claims;
        }

        // Claims the server reads as text or as a list of text: 401, as any invalid token.
        JsonObject[] refused =
        [
            With("sub", 123), With("sub", new JsonObject { ["id"] = "alice" }), With("sub", new JsonArray("alice")), With("sub", null),
            With("aud", new JsonObject { ["aud"] = "modelseal" }), With("aud", new JsonArray("modelseal", 7)), With("aud", 7),
            With("iss", 5), With("iss", new JsonArray(idp.Issuer)), With("scope", new JsonArray("keys")), With("scope", true),
            With("azp", 9), With("exp", "soon"), With("iat", new JsonObject()),
        ];
        foreach (JsonObject claims in refused)
        {
            await AssertRefusedAsync(server, idp.Sign(claims, "k1"));
        }

        // Odd headers: a kid or typ that is not a string, an alg that is an object.
        foreach (string header in new[] { """{"alg":"ES256","kid":1,"typ":"at+jwt"}""", """{"alg":"ES256","kid":"k1","typ":7}""", """{"alg":{"a":1},"kid":"k1","typ":"at+jwt"}""", """{"alg":"ES256","kid":["k1"],"typ":"at+jwt"}""" })
        {
            string[] parts = idp.Sign(idp.Claims("alice", server.Now), "k1").Split('.');
            await AssertRefusedAsync(server, ServerClient.Base64Url(System.Text.Encoding.UTF8.GetBytes(header)) + "." + parts[1] + "." + parts[2]);
        }

        // Claims the server does not read (groups, roles, a plan) may have any type: the token is accepted.
        foreach (JsonNode? value in new JsonNode?[] { "admins", new JsonObject { ["a"] = 1 }, 42, null, new JsonArray(1, "x") })
        {
            await AssertAcceptedAsync(server, idp.Sign(With("groups", value), "k1"));
        }
    }

    private static async Task<TestServer> StartAsync(DiscoveryIssuer idp, ManualTime time, Action<TrustedIssuerOptions>? configure = null)
    {
        var issuer = new TrustedIssuerOptions { Issuer = idp.Issuer, Authority = idp.Authority };
        configure?.Invoke(issuer);
        return await TestServer.StartAsync(o =>
        {
            o.Time = time;
            o.TrustedIssuers = [issuer];
        });
    }

    /// <summary>The issuer's discovery, once <paramref name="attempts"/> fetches have completed (the first starts with the server).</summary>
    private static async Task<IssuerDiscovery> FetchedAsync(TestServer server, DiscoveryIssuer idp, int attempts)
    {
        IssuerDiscovery discovery = server.App.Services.GetRequiredService<TrustedKeys>().DiscoveryOf(idp.Issuer)!;
        await AttemptedAsync(discovery, attempts);
        return discovery;
    }

    /// <summary>Waits until the server reports <paramref name="attempts"/> fetches done (a fetch that never comes fails the test after 30 s).</summary>
    private static async Task AttemptedAsync(IssuerDiscovery discovery, int attempts)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        await discovery.WaitForAttemptsAsync(attempts, timeout.Token);
    }

    /// <summary>Authenticated: key release gets past the token (refused for want of a licence).</summary>
    private static async Task AssertAcceptedAsync(TestServer server, string token)
    {
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (await server.ReleaseAsync(token, "m", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "licence-revoked");
    }

    /// <summary>Refused as a token: 401 with the usual vague detail and WWW-Authenticate, as for any invalid token.</summary>
    private static async Task AssertRefusedAsync(TestServer server, string token)
    {
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        Api answer = await server.ReleaseAsync(token, "m", "latest", device);
        answer.AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Equal("The bearer token is not valid (signature, issuer, audience, lifetime or key).", answer.Json.GetProperty("detail").GetString());
        Assert.Equal("Bearer error=\"invalid_token\"", Assert.Single(answer.Headers.WwwAuthenticate).ToString());
    }
}
