using System.Net;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Hpke;

namespace ModelSeal.Server.Tests;

/// <summary>The server's edges as an outside client meets them (docs/protocol.md sections 1 and 6).</summary>
public sealed class EdgeTests
{
    [Theory]
    [InlineData("padding")]
    [InlineData("space")]
    [InlineData("line-break")]
    [InlineData("standard-alphabet")]
    public async Task A_device_key_that_is_not_strict_base64url_releases_nothing(string how)
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();
        Licence licence = await server.CreateLicenceAsync(admin, "customer", ["m"]);
        string token = await server.LicenceTokenAsync(licence);

        // A key whose base64url needs both '-' and '_' somewhere, so that the standard alphabet differs.
        HpkeKeyPair device;
        string encoded;
        do
        {
            device = HpkeKeyPair.Generate();
            encoded = TestServer.Base64Url(device.PublicKey.Encoded.Span);
        }
        while (!encoded.Contains('-', StringComparison.Ordinal) || !encoded.Contains('_', StringComparison.Ordinal) ? Dispose(device) : false);

        using (device)
        {
            string broken = how switch
            {
                "padding" => encoded + "=",
                "space" => encoded[..40] + " " + encoded[40..],
                "line-break" => encoded[..40] + "\r\n" + encoded[40..],
                _ => encoded.Replace('-', '+').Replace('_', '/'),
            };
            Api answer = await server.PostAsync("/v1/keys/release", new { modelId = "m", version = "latest", devicePublicKey = broken, nonce = ServerClient.Nonce(), protocol = 2 }, token);
            answer.AssertProblem(HttpStatusCode.BadRequest, "invalid-device-key");
            Assert.Equal(0, server.Database.Count("SELECT COUNT(*) FROM devices"));

            // The same key, written strictly, works.
            (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", device)).Key.Dispose();
        }
    }

    [Theory]
    [InlineData("GET", "/v1/nothing-here", HttpStatusCode.NotFound, "not-found")]
    [InlineData("POST", "/v1/admin/nothing-here", HttpStatusCode.NotFound, "not-found")]
    [InlineData("GET", "/v1/keys/release", HttpStatusCode.MethodNotAllowed, "method-not-allowed")]
    [InlineData("DELETE", "/v1/token", HttpStatusCode.MethodNotAllowed, "method-not-allowed")]
    public async Task Unknown_routes_and_methods_are_404_and_405_with_or_without_a_token(string method, string path, HttpStatusCode status, string code)
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        (await server.SendAsync(new HttpMethod(method), path, null, null)).AssertProblem(status, code);
        (await server.SendAsync(new HttpMethod(method), path, null, admin)).AssertProblem(status, code);
    }

    [Fact]
    public async Task Every_endpoint_states_who_may_call_it()
    {
        // There is no fallback policy (it would answer 401 for routes that do not exist): each endpoint says itself.
        await using TestServer server = await TestServer.StartAsync();
        List<string> unstated = server.App.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.Metadata.GetMetadata<IAuthorizeData>() is null && e.Metadata.GetMetadata<IAllowAnonymous>() is null)
            .Select(e => e.RoutePattern.RawText ?? e.DisplayName ?? "?")
            .ToList();
        Assert.True(unstated.Count == 0, "Endpoints without an authorization policy or AllowAnonymous: " + string.Join(", ", unstated));
    }

    private static bool Dispose(HpkeKeyPair key)
    {
        key.Dispose();
        return true;
    }
}
