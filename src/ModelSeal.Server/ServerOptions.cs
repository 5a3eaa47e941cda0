namespace ModelSeal.Server;

/// <summary>
/// Configuration of the key server (docs/protocol.md). <see cref="ServerHost.Build"/> validates it and refuses to start
/// on anything missing or unsafe, with a <see cref="ServerConfigurationException"/> that says what to fix.
/// </summary>
public sealed class ServerOptions
{
    /// <summary>
    /// The data directory: <c>modelseal.db</c>, <c>master.keys</c>, <c>token-signing.key</c> and
    /// <c>admin.credential</c>. Created owner-only (<c>0700</c>) when absent; refused when accessible by other users.
    /// </summary>
    public required string DataDirectory { get; set; }

    /// <summary>
    /// Where to listen, <c>;</c>-separated. Plain <c>http://</c> only on loopback addresses unless
    /// <see cref="AllowNonLoopbackHttp"/> is set. Port 0 picks a free port (see <c>WebApplication.Urls</c> after start).
    /// </summary>
    public string Urls { get; set; } = "http://127.0.0.1:5380";

    /// <summary>The <c>iss</c> of the server's own tokens.</summary>
    public string Issuer { get; set; } = "modelseal:server";

    /// <summary>The <c>aud</c> every accepted token must carry.</summary>
    public string Audience { get; set; } = "modelseal";

    /// <summary>How long a released key may be used offline, capped by the licence's expiry.</summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Lifetime of the tokens <c>POST /v1/token</c> issues.</summary>
    public TimeSpan TokenLifetime { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>
    /// An external OIDC issuer whose tokens are also accepted (its <c>iss</c>, exactly). Requires
    /// <see cref="OidcJwksFile"/>: the server never fetches keys over the network.
    /// </summary>
    public string? OidcAuthority { get; set; }

    /// <summary>A JWKS JSON file with the signing keys of <see cref="OidcAuthority"/> (RS256, PS256 or ES256).</summary>
    public string? OidcJwksFile { get; set; }

    /// <summary>Key releases allowed per token subject per minute.</summary>
    public int ReleasesPerMinutePerSubject { get; set; } = 600;

    /// <summary>Requests allowed per client address per minute, on every endpoint.</summary>
    public int RequestsPerMinutePerClient { get; set; } = 6000;

    /// <summary>Allows plain <c>http://</c> on non-loopback addresses (behind a TLS-terminating proxy only).</summary>
    public bool AllowNonLoopbackHttp { get; set; }

    /// <summary>The clock for token lifetimes, licence validity, leases and records.</summary>
    public TimeProvider Time { get; set; } = TimeProvider.System;

    internal ServerOptions Copy() => (ServerOptions)MemberwiseClone();
}
