using System.Net;
using System.Text.Json;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Http;

namespace ModelSeal.Server.Tests;

/// <summary>
/// The per-address rate limit (docs/protocol.md section 6.2): taken before authentication, by client address (IPv6 by
/// /64), with the client address taken from X-Forwarded-For only on a connection from a trusted proxy.
/// </summary>
public sealed class RateLimitTests
{
    private const string TokenRejected = "Bearer token rejected";

    [Theory]
    [InlineData("192.0.2.7", "192.0.2.7")]
    [InlineData("127.0.0.1", "127.0.0.1")]
    [InlineData("::ffff:192.0.2.7", "192.0.2.7")]
    [InlineData("::ffff:127.0.0.1", "127.0.0.1")]
    [InlineData("::1", "::1")]
    [InlineData("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64")]
    [InlineData("2001:db8:1:2::1", "2001:db8:1:2::/64")]
    [InlineData("2001:db8:1:3::1", "2001:db8:1:3::/64")]
    [InlineData("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8:ffff:ffff::/64")]
    [InlineData("fe80::1%3", "fe80::/64")]
    [InlineData("fe80::abcd:ef01:2345:6789%7", "fe80::/64")]
    [InlineData("::", "::/64")]
    [InlineData("::2", "::/64")]
    public void A_client_address_partitions_as_IPv4_or_its_IPv6_64(string address, string partition) =>
        Assert.Equal(partition, ClientAddresses.Partition(IPAddress.Parse(address)));

    [Fact]
    public void No_client_address_is_one_partition() => Assert.Equal("unknown", ClientAddresses.Partition(null));

    [Fact]
    public async Task An_address_over_its_limit_is_429_before_its_token_is_looked_at()
    {
        await using TestServer server = await TestServer.StartAsync(o => o.RequestsPerMinutePerClient = 3);
        string token = await server.AdminTokenAsync();
        string forged = token[..^2] + (token[^2] == 'A' ? "BA" : "AA");

        // Under the limit an invalid token is validated, refused and logged.
        (await server.GetAsync("/v1/admin/models", forged)).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Equal(1, server.Logs.Lines.Count(line => line.Contains(TokenRejected, StringComparison.Ordinal)));
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/live")).Status);

        // Over it: 429, and the token is never validated (no second rejection logged), valid or not.
        Api limited = await server.GetAsync("/v1/admin/models", forged);
        limited.AssertProblem(HttpStatusCode.TooManyRequests, "rate-limited");
        Assert.True(limited.Headers.RetryAfter?.Delta > TimeSpan.Zero, limited.Headers.ToString());
        Assert.Equal("no-store", limited.Headers.CacheControl?.ToString());
        (await server.GetAsync("/v1/admin/models", token)).AssertProblem(HttpStatusCode.TooManyRequests, "rate-limited");
        (await server.PostAsync("/v1/keys/release", new { modelId = "m", version = "1", devicePublicKey = "AA", nonce = ServerClient.Nonce(), protocol = 2 }, forged)).AssertProblem(HttpStatusCode.TooManyRequests, "rate-limited");
        Assert.Equal(1, server.Logs.Lines.Count(line => line.Contains(TokenRejected, StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget()
    {
        await using TestServer server = await TestServer.StartAsync(o =>
        {
            o.RequestsPerMinutePerClient = 2;
            o.TrustedProxies = ["127.0.0.0/8", "2001:db8:ffff::7"];
        });

        // 203.0.113.5 uses its budget; a client that forges an address to the left of it is still 203.0.113.5.
        Assert.Equal(HttpStatusCode.OK, (await Live(server, "203.0.113.5")).Status);
        Assert.Equal(HttpStatusCode.OK, (await Live(server, "203.0.113.5")).Status);
        (await Live(server, "203.0.113.5")).AssertProblem(HttpStatusCode.TooManyRequests, "rate-limited");
        (await Live(server, "198.51.100.99, 203.0.113.5")).AssertProblem(HttpStatusCode.TooManyRequests, "rate-limited");

        // Another client, the proxy itself, and a client behind two trusted proxies are not limited by it.
        Assert.Equal(HttpStatusCode.OK, (await Live(server, "198.51.100.7")).Status);
        Assert.Equal(HttpStatusCode.OK, (await Live(server, null)).Status);
        Assert.Equal(HttpStatusCode.OK, (await Live(server, "203.0.113.9, 127.0.0.5")).Status);
        Assert.Equal(HttpStatusCode.OK, (await Live(server, "203.0.113.9, 2001:db8:ffff::7, 127.0.0.5")).Status);
        (await Live(server, "203.0.113.9")).AssertProblem(HttpStatusCode.TooManyRequests, "rate-limited");

        // IPv6 clients count by /64.
        Assert.Equal(HttpStatusCode.OK, (await Live(server, "2001:db8:1:2::1")).Status);
        Assert.Equal(HttpStatusCode.OK, (await Live(server, "2001:db8:1:2::2")).Status);
        (await Live(server, "2001:db8:1:2:ffff::3")).AssertProblem(HttpStatusCode.TooManyRequests, "rate-limited");
        Assert.Equal(HttpStatusCode.OK, (await Live(server, "2001:db8:1:3::1")).Status);
    }

    [Theory]
    [InlineData("")]
    [InlineData("192.0.2.1")]
    [InlineData("10.0.0.0/8 ::1")]
    public async Task X_Forwarded_For_from_a_connection_that_is_no_trusted_proxy_is_ignored(string trustedProxies)
    {
        await using TestServer server = await TestServer.StartAsync(o =>
        {
            o.RequestsPerMinutePerClient = 2;
            o.TrustedProxies = trustedProxies.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        });
        Assert.Equal(HttpStatusCode.OK, (await Live(server, "203.0.113.5")).Status);
        Assert.Equal(HttpStatusCode.OK, (await Live(server, "198.51.100.7")).Status);
        (await Live(server, "198.51.100.8")).AssertProblem(HttpStatusCode.TooManyRequests, "rate-limited");
    }

    [Theory]
    [InlineData("127.0.0.1", "198.51.100.99, 203.0.113.5", "203.0.113.5")]
    [InlineData("192.0.2.1", "203.0.113.5", "127.0.0.1")]
    public async Task The_audit_records_the_forwarded_client_only_from_a_trusted_proxy(string trustedProxy, string forwardedFor, string client)
    {
        await using TestServer server = await TestServer.StartAsync(o => o.TrustedProxies = [trustedProxy]);
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        Licence licence = await server.CreateLicenceAsync(admin, "customer", ["m"]);
        string token = await server.LicenceTokenAsync(licence);
        using HpkeKeyPair device = HpkeKeyPair.Generate();

        server.Client.DefaultRequestHeaders.Add("X-Forwarded-For", forwardedFor);
        Api released = await server.ReleaseAsync(token, "m", "latest", device);
        Api refused = await server.ReleaseAsync(token, "other", "latest", device);
        server.Client.DefaultRequestHeaders.Remove("X-Forwarded-For");
        released.AssertStatus(HttpStatusCode.OK);
        refused.AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");

        Api audit = await server.GetAsync("/v1/admin/audit?limit=500", admin);
        JsonElement[] records = audit.Json.GetProperty("items").EnumerateArray().Where(r => r.GetProperty("event").GetString() is "key.released" or "key.refused").ToArray();
        Assert.Equal(2, records.Length);
        Assert.All(records, record => Assert.Equal(client, record.GetProperty("client").GetString()));
    }

    [Theory]
    [InlineData("10.0.0.1/8", "the bits after it must be zero")]
    [InlineData("10.0.0.0/33", "the bits after it must be zero")]
    [InlineData("0.0.0.0/0", "holds every address")]
    [InlineData("::/0", "holds every address")]
    [InlineData("proxy.example", "each trusted proxy is an IP address")]
    [InlineData("10.1", "each trusted proxy is an IP address")]
    [InlineData("nonsense/8", "each trusted proxy is an IP address")]
    [InlineData(" ", "TrustedProxies:1 is empty")]
    public void An_invalid_trusted_proxy_is_refused_naming_the_key(string proxy, string message)
    {
        using var directory = new TempDirectory();
        string data = directory.Sub("data");
        var options = new ServerOptions { DataDirectory = data, TrustedProxies = ["192.0.2.1", proxy] };
        var e = Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(options));
        Assert.Contains("TrustedProxies:1", e.Message, StringComparison.Ordinal);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(data), "Nothing is created before the configuration is valid.");
    }

    private static async Task<Api> Live(TestServer server, string? forwardedFor)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/health/live");
        if (forwardedFor is not null)
        {
            request.Headers.Add("X-Forwarded-For", forwardedFor);
        }

        using HttpResponseMessage response = await server.Client.SendAsync(request, TestContext.Current.CancellationToken);
        return await Api.ReadAsync(response);
    }
}
