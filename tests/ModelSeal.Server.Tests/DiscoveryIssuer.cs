using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace ModelSeal.Server.Tests;

/// <summary>
/// A minimal OpenID Connect issuer on 127.0.0.1 for the discovery mechanism's tests: it serves a discovery document
/// (<c>/.well-known/openid-configuration</c>) and a JWKS (<c>/jwks</c>) of ES256 keys the test generates, counts the
/// requests for each, and can be taken down (503), made to publish another <c>issuer</c>, or given new keys. Tokens are
/// signed with its keys by <c>kid</c>. (Not an identity provider: the end-to-end tests use a real one.)
/// </summary>
internal sealed class DiscoveryIssuer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Dictionary<string, ECDsa> _keys = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private List<string> _published = [];
    private int _discoveryRequests;
    private int _jwksRequests;

    private DiscoveryIssuer(WebApplication app, string authority)
    {
        _app = app;
        Authority = authority;
        Issuer = authority;
        DocumentIssuer = authority;
    }

    /// <summary>The authority (<c>http://127.0.0.1:PORT</c>), which is also the issuer.</summary>
    public string Authority { get; }

    public string Issuer { get; }

    /// <summary>The <c>issuer</c> the discovery document states (the <see cref="Issuer"/> unless a test changes it).</summary>
    public string DocumentIssuer { get; set; }

    /// <summary>The <c>jwks_uri</c> the discovery document states (its own <c>/jwks</c> unless a test changes it).</summary>
    public string? JwksUri { get; set; }

    /// <summary>False: both documents answer 503.</summary>
    public bool Up { get; set; } = true;

    public int DiscoveryRequests => Volatile.Read(ref _discoveryRequests);

    public int JwksRequests => Volatile.Read(ref _jwksRequests);

    public static async Task<DiscoveryIssuer> StartAsync(params string[] kids)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        WebApplication app = builder.Build();
        DiscoveryIssuer? issuer = null;
        app.MapGet("/.well-known/openid-configuration", () =>
        {
            Interlocked.Increment(ref issuer!._discoveryRequests);
            return issuer.Up
                ? Results.Text(new JsonObject { ["issuer"] = issuer.DocumentIssuer, ["jwks_uri"] = issuer.JwksUri ?? issuer.Authority + "/jwks", ["id_token_signing_alg_values_supported"] = new JsonArray("ES256") }.ToJsonString(), "application/json")
                : Results.StatusCode(StatusCodes.Status503ServiceUnavailable);
        });
        app.MapGet("/jwks", () =>
        {
            Interlocked.Increment(ref issuer!._jwksRequests);
            return issuer.Up ? Results.Text(issuer.Jwks(), "application/json") : Results.StatusCode(StatusCodes.Status503ServiceUnavailable);
        });
        await app.StartAsync(TestContext.Current.CancellationToken);
        issuer = new DiscoveryIssuer(app, app.Urls.Single().TrimEnd('/'));
        issuer.Publish(kids);
        return issuer;
    }

    /// <summary>Publishes exactly these keys (created on first use), in place of the ones before.</summary>
    public void Publish(params string[] kids)
    {
        lock (_lock)
        {
            foreach (string kid in kids)
            {
                if (!_keys.ContainsKey(kid))
                {
                    _keys[kid] = ECDsa.Create(ECCurve.NamedCurves.nistP256);
                }
            }

            _published = [.. kids];
        }
    }

    /// <summary>An access token (<c>typ</c> at+jwt) of this issuer with these claims, signed with the key <paramref name="kid"/> (published or not).</summary>
    public string Sign(JsonObject claims, string kid, string? typ = "at+jwt")
    {
        ECDsa key;
        lock (_lock)
        {
            if (!_keys.TryGetValue(kid, out key!))
            {
                key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
                _keys[kid] = key;
            }
        }

        return ExternalIssuer.Sign("ES256", kid, claims, data => key.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation), typ);
    }

    /// <summary>Claims of an access token for the key server, valid for five minutes from <paramref name="now"/>.</summary>
    public JsonObject Claims(string subject, DateTimeOffset now, string scope = "keys")
    {
        long t = now.ToUnixTimeSeconds();
        return new JsonObject { ["iss"] = Issuer, ["aud"] = "modelseal", ["sub"] = subject, ["scope"] = scope, ["iat"] = t, ["nbf"] = t, ["exp"] = t + 300 };
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        foreach (ECDsa key in _keys.Values)
        {
            key.Dispose();
        }
    }

    private string Jwks()
    {
        var keys = new JsonArray();
        lock (_lock)
        {
            foreach (string kid in _published)
            {
                ECParameters p = _keys[kid].ExportParameters(false);
                keys.Add(new JsonObject { ["kty"] = "EC", ["kid"] = kid, ["use"] = "sig", ["alg"] = "ES256", ["crv"] = "P-256", ["x"] = ServerClient.Base64Url(p.Q.X), ["y"] = ServerClient.Base64Url(p.Q.Y) });
            }
        }

        return new JsonObject { ["keys"] = keys }.ToJsonString();
    }
}
