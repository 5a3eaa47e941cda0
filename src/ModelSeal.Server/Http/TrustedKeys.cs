using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.Domain;

namespace ModelSeal.Server.Http;

/// <summary>
/// Every key a token may be signed with, by issuer: the server's own token key for its own <c>iss</c>, and each trusted
/// issuer's keys (from its file, or the last good set discovered from its Authority) for that issuer's <c>iss</c>. A key
/// validates only tokens of its own issuer, named by <c>kid</c>, with an algorithm both the key and the issuer allow.
/// Not ready while an issuer configured by Authority has never been fetched.
/// </summary>
internal sealed class TrustedKeys(IReadOnlyList<TrustedIssuer> trusted) : IReadinessCondition, IDisposable
{
    private readonly Dictionary<string, TrustedIssuer> _byIssuer = trusted.ToDictionary(t => t.Issuer, StringComparer.Ordinal);

    /// <summary>The issuers whose keys are discovered.</summary>
    public IEnumerable<IssuerDiscovery> Discoveries => trusted.Select(t => t.Discovery).OfType<IssuerDiscovery>();

    /// <summary>Ready when every discovered issuer has been fetched successfully at least once.</summary>
    public bool IsReady => Discoveries.All(d => d.Current is not null);

    /// <summary>The discovery of <paramref name="issuer"/>, when it is configured by Authority (for tests).</summary>
    public IssuerDiscovery? DiscoveryOf(string issuer) => _byIssuer.GetValueOrDefault(issuer)?.Discovery;

    /// <summary>The keys of <paramref name="token"/>'s issuer named by its <c>kid</c> that may sign with its <c>alg</c>.</summary>
    public IEnumerable<SecurityKey> Resolve(SecurityToken? token, string? kid)
    {
        if (token is not JsonWebToken jwt || string.IsNullOrEmpty(kid) || Issuer(jwt) is not { } issuer || !_byIssuer.TryGetValue(issuer, out TrustedIssuer? trustedIssuer))
        {
            return [];
        }

        return trustedIssuer.Keys?.Find(kid, Algorithm(jwt)) ?? [];
    }

    /// <summary>True when <paramref name="key"/> is one of <paramref name="token"/>'s issuer's keys in use and may sign with its <c>alg</c>.</summary>
    public bool Allows(SecurityKey key, JsonWebToken token) =>
        Issuer(token) is { } issuer && _byIssuer.TryGetValue(issuer, out TrustedIssuer? trustedIssuer) &&
        trustedIssuer.Keys?.AlgorithmsOf(key) is { } algorithms && Algorithm(token) is { } alg && algorithms.Contains(alg, StringComparer.Ordinal);

    /// <summary>
    /// True unless <paramref name="key"/> was one of a discovered issuer's keys that is no longer in use (so a token
    /// remembered as valid is validated again after the issuer dropped its key).
    /// </summary>
    public bool IsCurrent(SecurityKey? key, string? issuer) =>
        issuer is null || !_byIssuer.TryGetValue(issuer, out TrustedIssuer? trustedIssuer) || trustedIssuer.Discovery is null ||
        (key is not null && trustedIssuer.Keys?.AlgorithmsOf(key) is not null);

    /// <summary>
    /// After a validation failed for want of a key: when the token names a discovered issuer and a <c>kid</c> its keys do
    /// not hold, fetches them again (at most once per MinimumRefreshInterval, <see cref="IssuerDiscovery"/>) and says
    /// whether the <c>kid</c> is now known, so that the token is worth validating again. Logs why it is not.
    /// </summary>
    public async Task<bool> RefreshForUnknownKeyAsync(string token, ILogger logger)
    {
        string? issuer;
        string? kid;
        try
        {
            var jwt = new JsonWebToken(token);
            issuer = Issuer(jwt);
            kid = jwt.TryGetHeaderValue(JwtHeaderParameterNames.Kid, out string? k) ? k : null;
        }
        catch (Exception e) when (e is ArgumentException or SecurityTokenException or FormatException or InvalidOperationException or System.Text.Json.JsonException)
        {
            return false;
        }

        if (issuer is null || string.IsNullOrEmpty(kid) || _byIssuer.GetValueOrDefault(issuer)?.Discovery is not { } discovery || discovery.Current?.Holds(kid) == true)
        {
            return false;
        }

        if (discovery.Current?.PublishesUnusable(kid) == true)
        {
            // Published, but not for this server: fetching the keys again would not change that.
            ServerLog.UnusableSigningKey(logger, issuer, IssuerDiscovery.Printable(kid.Length > 64 ? kid[..64] : kid));
            return false;
        }

        bool fetchedBefore = discovery.Current is not null;
        int attempts = discovery.Attempts;
        if (await discovery.RefreshForUnknownKeyAsync(kid).ConfigureAwait(false))
        {
            return true;
        }

        if (discovery.Current is null)
        {
            ServerLog.IssuerKeysNotFetched(logger, issuer, discovery.MetadataAddress.AbsoluteUri);
        }
        else
        {
            ServerLog.UnknownSigningKey(logger, issuer, IssuerDiscovery.Printable(kid.Length > 64 ? kid[..64] : kid), fetchedBefore && discovery.Attempts > attempts);
        }

        return false;
    }

    public void Dispose()
    {
        foreach (IssuerDiscovery discovery in Discoveries)
        {
            discovery.Dispose();
        }
    }

    /// <summary>The token's <c>iss</c> when it is a string (null for anything else, never an exception).</summary>
    private static string? Issuer(JsonWebToken token) =>
        token.TryGetPayloadValue(JwtRegisteredClaimNames.Iss, out string? issuer) ? issuer : null;

    /// <summary>The token's <c>alg</c> when it is a string.</summary>
    private static string? Algorithm(JsonWebToken token) =>
        token.TryGetHeaderValue(JwtHeaderParameterNames.Alg, out string? alg) ? alg : null;
}

/// <summary>Runs each discovered issuer's fetch schedule (<see cref="IssuerDiscovery.Start"/>) while the server runs.</summary>
internal sealed class TrustedIssuerRefresh(TrustedKeys keys) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (IssuerDiscovery discovery in keys.Discoveries)
        {
            discovery.Start();
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (IssuerDiscovery discovery in keys.Discoveries)
        {
            discovery.Stop();
        }

        return Task.CompletedTask;
    }
}
