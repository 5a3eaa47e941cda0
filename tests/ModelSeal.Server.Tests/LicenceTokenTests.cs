using System.Net;
using ModelSeal.Hpke;

namespace ModelSeal.Server.Tests;

/// <summary>
/// <c>POST /v1/token</c> for a licence that is revoked, expired or not yet valid (docs/protocol.md section 1): the
/// licence's own 403 code, but only for the right credential; anything else keeps the vague 401.
/// </summary>
public sealed class LicenceTokenTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task A_revoked_licence_gets_no_token_but_only_its_credential_learns_why()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        Licence licence = await server.CreateLicenceAsync(admin, "revoked-soon", ["m"]);
        await server.LicenceTokenAsync(licence);
        (await server.PostAsync($"/v1/admin/licences/{licence.Id}/revoke", null, admin)).AssertStatus(HttpStatusCode.OK);

        (await Exchange(server, licence.Id, licence.Credential)).AssertProblem(HttpStatusCode.Forbidden, "licence-revoked");
        AssertVague(await Exchange(server, licence.Id, "not-the-credential"));
        AssertVague(await Exchange(server, "lic_unknown", licence.Credential));
        AssertVague(await Exchange(server, "lic_unknown", "not-the-credential"));
    }

    [Fact]
    public async Task An_expired_licence_gets_no_token_from_its_expiry_on()
    {
        var time = new ManualTime(Start);
        await using TestServer server = await TestServer.StartAsync(o => o.Time = time);
        string admin = await server.AdminTokenAsync();
        Licence licence = await server.CreateLicenceAsync(admin, "expiring", ["m"], expiresAt: Start.AddHours(1));
        await server.LicenceTokenAsync(licence);

        time.Advance(TimeSpan.FromHours(1));
        Api expired = await Exchange(server, licence.Id, licence.Credential);
        expired.AssertProblem(HttpStatusCode.Forbidden, "licence-expired");
        Assert.Contains("2026-11-23T11:00:00Z", expired.Json.GetProperty("detail").GetString(), StringComparison.Ordinal);
        AssertVague(await Exchange(server, licence.Id, "not-the-credential"));
    }

    [Fact]
    public async Task A_licence_that_is_not_yet_valid_gets_a_token_once_it_starts()
    {
        var time = new ManualTime(Start);
        await using TestServer server = await TestServer.StartAsync(o => o.Time = time);
        string admin = await server.AdminTokenAsync();
        Licence licence = await server.CreateLicenceAsync(admin, "future", ["m"], notBefore: Start.AddDays(1));

        (await Exchange(server, licence.Id, licence.Credential)).AssertProblem(HttpStatusCode.Forbidden, "licence-not-yet-valid");
        AssertVague(await Exchange(server, licence.Id, "not-the-credential"));

        time.Advance(TimeSpan.FromDays(1));
        await server.LicenceTokenAsync(licence);
    }

    [Fact]
    public async Task A_token_issued_before_the_revocation_is_still_refused_at_release()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        Licence licence = await server.CreateLicenceAsync(admin, "r", ["m"]);
        string token = await server.LicenceTokenAsync(licence);
        (await server.PostAsync($"/v1/admin/licences/{licence.Id}/revoke", null, admin)).AssertStatus(HttpStatusCode.OK);

        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (await server.ReleaseAsync(token, "m", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "licence-revoked");
        (await Exchange(server, licence.Id, licence.Credential)).AssertProblem(HttpStatusCode.Forbidden, "licence-revoked");
    }

    private static Task<Api> Exchange(TestServer server, string licenceId, string credential) =>
        server.PostAsync("/v1/token", new { grantType = "licence", licenceId, credential });

    /// <summary>The one answer for a wrong credential or an unknown licence id: it says nothing about the licence.</summary>
    private static void AssertVague(Api answer)
    {
        answer.AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Equal("The licence id or credential is not valid.", answer.Json.GetProperty("detail").GetString());
        Assert.Equal("ModelSeal-Credential realm=\"modelseal\"", Assert.Single(answer.Headers.WwwAuthenticate).ToString());
    }
}
