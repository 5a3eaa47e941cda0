using System.Net;
using ModelSeal.Hpke;

namespace ModelSeal.Server.Tests;

/// <summary>
/// The server remembers tokens it has validated (<c>CachingTokenHandler</c>): a remembered token still expires on
/// time, altered copies of it are still refused, and licence checks still run on every release.
/// </summary>
public sealed class TokenCacheTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task A_remembered_token_is_refused_once_it_expires()
    {
        var time = new ManualTime(Start);
        await using TestServer server = await TestServer.StartAsync(o => o.Time = time);
        (Licence licence, string token) = await SetUpAsync(server);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", device)).Key.Dispose();
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", device)).Key.Dispose();

        // 15 minutes of lifetime and 30 s of skew: still fine at 15:29, refused at 15:31.
        time.Advance(TimeSpan.FromMinutes(15) + TimeSpan.FromSeconds(29));
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", device)).Key.Dispose();
        time.Advance(TimeSpan.FromSeconds(2));
        Api expired = await server.ReleaseAsync(token, "m", "latest", device);
        expired.AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");

        // And it stays refused (the cache dropped it).
        (await server.ReleaseAsync(token, "m", "latest", device)).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task Altered_copies_of_a_remembered_token_are_refused_and_the_original_still_works()
    {
        await using TestServer server = await TestServer.StartAsync();
        (Licence licence, string token) = await SetUpAsync(server);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", device)).Key.Dispose();

        string[] parts = token.Split('.');
        byte[] signature = System.Buffers.Text.Base64Url.DecodeFromChars(parts[2]);
        signature[5] ^= 1;
        string payload = System.Text.Encoding.UTF8.GetString(System.Buffers.Text.Base64Url.DecodeFromChars(parts[1]))
            .Replace("\"scope\":\"keys\"", "\"scope\":\"keys admin\"", StringComparison.Ordinal);
        foreach (string altered in new[]
        {
            $"{parts[0]}.{parts[1]}.{TestServer.Base64Url(signature)}",
            $"{parts[0]}.{TestServer.Base64Url(System.Text.Encoding.UTF8.GetBytes(payload))}.{parts[2]}",
            token + "x",
            token[..^1],
        })
        {
            (await server.ReleaseAsync(altered, "m", "latest", device)).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        }

        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", device)).Key.Dispose();
    }

    [Fact]
    public async Task A_remembered_token_of_a_revoked_licence_gets_no_key()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        (Licence licence, string token) = await SetUpAsync(server, admin);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", device)).Key.Dispose();
        Assert.Equal(HttpStatusCode.OK, (await server.PostAsync($"/v1/admin/licences/{licence.Id}/revoke", null, admin)).Status);
        (await server.ReleaseAsync(token, "m", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "licence-revoked");
    }

    private static async Task<(Licence Licence, string Token)> SetUpAsync(TestServer server, string? admin = null)
    {
        admin ??= await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        Licence licence = await server.CreateLicenceAsync(admin, "customer", ["m"]);
        return (licence, await server.LicenceTokenAsync(licence));
    }
}
