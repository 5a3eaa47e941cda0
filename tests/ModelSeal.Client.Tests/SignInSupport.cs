using System.Buffers.Text;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ModelSeal.Client.Tests;

/// <summary>
/// An identity provider as the key server sees it: an ES256 key pair, its public key as a static JWKS file (the
/// server's <c>TrustedIssuers:n:JwksFile</c>), and access tokens (RFC 9068, <c>typ</c> at+jwt) signed with it.
/// </summary>
internal sealed class TestIdentityProvider : IDisposable
{
    private readonly ECDsa _key = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public TestIdentityProvider(string issuer, string jwksFile)
    {
        Issuer = issuer;
        JwksFile = jwksFile;
        ECParameters p = _key.ExportParameters(false);
        var jwks = new JsonObject
        {
            ["keys"] = new JsonArray(new JsonObject { ["kty"] = "EC", ["kid"] = "idp-1", ["use"] = "sig", ["crv"] = "P-256", ["x"] = Base64Url.EncodeToString(p.Q.X), ["y"] = Base64Url.EncodeToString(p.Q.Y) }),
        };
        File.WriteAllText(jwksFile, jwks.ToJsonString());
    }

    public string Issuer { get; }

    public string JwksFile { get; }

    /// <summary>
    /// A user's access token for the key server (audience <c>modelseal</c>), issued at <paramref name="issuedAt"/>
    /// (default now), expiring at <paramref name="expiresAt"/> (default 5 minutes after it was issued).
    /// </summary>
    public string Token(string subject, DateTimeOffset? expiresAt = null, DateTimeOffset? issuedAt = null) => Sign(_key, subject, expiresAt, issuedAt);

    /// <summary>A token that claims to be this issuer's but is signed with another key: the key server answers 401.</summary>
    public string ForgedToken(string subject)
    {
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        return Sign(other, subject, null, null);
    }

    public void Dispose() => _key.Dispose();

    private string Sign(ECDsa key, string subject, DateTimeOffset? expiresAt, DateTimeOffset? issuedAt)
    {
        DateTimeOffset issued = issuedAt ?? DateTimeOffset.UtcNow;
        long now = issued.ToUnixTimeSeconds();
        var claims = new JsonObject
        {
            ["iss"] = Issuer, ["aud"] = "modelseal", ["sub"] = subject, ["scope"] = "keys", ["iat"] = now, ["nbf"] = now,
            ["exp"] = (expiresAt ?? issued.AddMinutes(5)).ToUnixTimeSeconds(),
        };
        return Jwt(new JsonObject { ["alg"] = "ES256", ["kid"] = "idp-1", ["typ"] = "at+jwt" }, claims, data => key.SignData(data, HashAlgorithmName.SHA256));
    }

    /// <summary>A compact JWS of <paramref name="claims"/> (the signature from <paramref name="sign"/>).</summary>
    public static string Jwt(JsonObject header, JsonObject claims, Func<byte[], byte[]> sign)
    {
        string input = $"{Base64Url.EncodeToString(Encoding.UTF8.GetBytes(header.ToJsonString()))}.{Base64Url.EncodeToString(Encoding.UTF8.GetBytes(claims.ToJsonString()))}";
        return $"{input}.{Base64Url.EncodeToString(sign(Encoding.ASCII.GetBytes(input)))}";
    }

    /// <summary>An unsigned JWT-shaped string with these claims (the client reads claims without verifying them).</summary>
    public static string Unsigned(JsonObject claims) =>
        Jwt(new JsonObject { ["alg"] = "ES256", ["typ"] = "at+jwt" }, claims, _ => new byte[64]);
}

/// <summary>The app's side of sign-in in a test: the callback, with every call recorded.</summary>
internal sealed class SignInCallback
{
    private readonly Lock _lock = new();
    private readonly List<bool> _calls = [];
    private readonly Func<bool, string> _token;

    public SignInCallback(Func<bool, string> token)
    {
        _token = token;
    }

    /// <summary>The <c>forceRefresh</c> argument of each call, in order.</summary>
    public IReadOnlyList<bool> Calls
    {
        get
        {
            lock (_lock)
            {
                return [.. _calls];
            }
        }
    }

    public ValueTask<string> GetTokenAsync(bool forceRefresh, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_lock)
        {
            _calls.Add(forceRefresh);
        }

        return ValueTask.FromResult(_token(forceRefresh));
    }
}

/// <summary>Counts the key release requests the client sends (every attempt) and keeps their bearer tokens.</summary>
internal sealed class ReleaseCounter
{
    private readonly System.Collections.Concurrent.ConcurrentQueue<string?> _bearers = new();

    public int Releases => _bearers.Count;

    public IReadOnlyList<string?> Bearers => [.. _bearers];

    public DelegatingHandler Handler() => new Counting(this);

    private sealed class Counting(ReleaseCounter owner) : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.RequestUri?.AbsolutePath.EndsWith("/v1/keys/release", StringComparison.Ordinal) == true)
            {
                owner._bearers.Enqueue(request.Headers.Authorization?.Parameter);
            }

            return base.SendAsync(request, cancellationToken);
        }
    }
}

internal static class SignInServices
{
    /// <summary>
    /// A key server that trusts <paramref name="idp"/>'s access tokens, with these entitlement rules (default none), on
    /// the clock <paramref name="time"/> (default the system's).
    /// </summary>
    public static Task<TestKeyServer> StartServerAsync(TestIdentityProvider idp, IList<ModelSeal.Server.Configuration.EntitlementRuleOptions>? rules = null, TimeProvider? time = null) =>
        TestKeyServer.StartAsync(
            o =>
            {
                o.TrustedIssuers = [new() { Issuer = idp.Issuer, JwksFile = idp.JwksFile }];
                o.Entitlements.Rules = rules ?? [];
                o.Time = time ?? TimeProvider.System;
            },
            cancellationToken: TestContext.Current.CancellationToken);

    /// <summary>As an administrator (<c>POST /v1/admin/users/{id}/block</c> or <c>unblock</c>): blocks or unblocks the identity provider's user <paramref name="subject"/>.</summary>
    public static async Task SetUserBlockedAsync(this TestKeyServer server, TestIdentityProvider idp, string subject, bool block)
    {
        HttpClient admin = await server.AdminAsync(TestContext.Current.CancellationToken);
        using System.Text.Json.JsonDocument users = System.Text.Json.JsonDocument.Parse(await admin.GetStringAsync(new Uri("/v1/admin/users?issuer=" + Uri.EscapeDataString(idp.Issuer), UriKind.Relative), TestContext.Current.CancellationToken));
        long id = users.RootElement.GetProperty("items").EnumerateArray().Single(u => u.GetProperty("subject").GetString() == subject).GetProperty("userId").GetInt64();
        using HttpResponseMessage response = await admin.PostAsync(new Uri($"/v1/admin/users/{id}/{(block ? "block" : "unblock")}", UriKind.Relative), null, TestContext.Current.CancellationToken);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
    }

    /// <summary>A licence for the identity provider's user <paramref name="subject"/> (claimed by its tokens; no credential).</summary>
    public static async Task CreateUserLicenceAsync(this TestKeyServer server, TestIdentityProvider idp, string subject, IReadOnlyList<string> models)
    {
        HttpClient admin = await server.AdminAsync(TestContext.Current.CancellationToken);
        using HttpResponseMessage response = await admin.PostAsJsonAsync("/v1/admin/licences", new { subject, models, maxDevices = 5, issuer = idp.Issuer }, TestContext.Current.CancellationToken);
        Assert.Equal(System.Net.HttpStatusCode.Created, response.StatusCode);
    }

    /// <summary>The client as an app that signs its users in registers it: no licence id, no credential file.</summary>
    public static ServiceProvider Create(string serverUrl, SignInCallback callback, TempDirectory directory, ReleaseCounter? counter = null, TimeProvider? time = null, ILoggerProvider? logs = null, Action<ModelSealClientOptions>? configure = null, Tamper? tamper = null)
    {
        var services = new ServiceCollection();
        if (logs is not null)
        {
            services.AddLogging(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(logs));
        }

        if (time is not null)
        {
            services.AddSingleton(time);
        }

        services.AddModelSeal(o =>
        {
            o.ServerUrl = serverUrl;
            o.DeviceKeyFile = directory.Sub("device/device.key");
            o.LeaseCacheDirectory = directory.Sub("leases");
            configure?.Invoke(o);
        });
        services.AddModelSealSignIn(callback.GetTokenAsync);
        if (counter is not null)
        {
            services.AddHttpClient(ModelSealServiceCollectionExtensions.HttpClientName).AddHttpMessageHandler(counter.Handler);
        }

        if (tamper is not null)
        {
            services.AddHttpClient(ModelSealServiceCollectionExtensions.HttpClientName).AddHttpMessageHandler(() => tamper);
        }

        return services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
    }
}
