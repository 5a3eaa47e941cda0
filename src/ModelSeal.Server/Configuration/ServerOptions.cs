using ModelSeal.Server.Files;
namespace ModelSeal.Server.Configuration;

/// <summary>
/// Configuration of the key server (docs/protocol.md; every key in docs/deploy.md "Configuration reference").
/// <see cref="ServerConfiguration.Load"/> reads it from a JSON file, <c>MODELSEAL_</c> environment variables and
/// overrides; <see cref="ServerHost.Build"/> validates it and refuses to start on anything missing or unsafe, with a
/// <see cref="ServerConfigurationException"/> that says what to fix.
/// </summary>
public sealed class ServerOptions
{
    /// <summary>
    /// The data directory: <c>modelseal.db</c>, <c>modelseal.lock</c> and, with the file master-key provider only,
    /// <c>master.keys</c>, <c>token-signing.key</c> and <c>answer-signing.key</c>. Created owner-only (<c>0700</c>) when
    /// absent; refused when accessible by other users.
    /// </summary>
    public required string DataDirectory { get; set; }

    /// <summary>
    /// Where the server writes the admin credential at its first start (when the database holds none): a new file,
    /// owner-only, outside the data directory; only the credential's hash is stored, in the database. Required at
    /// first start, unused afterwards (<c>modelseal admin-credential rotate --out FILE</c> makes a new credential).
    /// </summary>
    public string? AdminCredentialOut { get; set; }

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

    /// <summary>Key releases allowed per token subject per minute.</summary>
    public int ReleasesPerMinutePerSubject { get; set; } = 600;

    /// <summary>Requests allowed per client address per minute, on every endpoint.</summary>
    public int RequestsPerMinutePerClient { get; set; } = 6000;

    /// <summary>Allows plain <c>http://</c> on non-loopback addresses (behind a TLS-terminating proxy only).</summary>
    public bool AllowNonLoopbackHttp { get; set; }

    /// <summary>
    /// The clock for token lifetimes, licence validity, leases and records. Code only (tests move it): it is not a
    /// configuration key, so no file, environment variable or flag sets it.
    /// </summary>
    public TimeProvider Time { get; set; } = TimeProvider.System;

    /// <summary>Where the master keys that wrap every data key live (configuration section <c>MasterKey</c>).</summary>
    public MasterKeyOptions MasterKey { get; set; } = new();

    /// <summary>The Prometheus scrape endpoint <c>/metrics</c> (configuration section <c>Metrics</c>).</summary>
    public MetricsOptions Metrics { get; set; } = new();

    /// <summary>Where models, licences, devices and the audit log live (configuration section <c>Database</c>).</summary>
    public DatabaseOptions Database { get; set; } = new();

    /// <summary>How refusals are coalesced and how often the audit log is checkpointed (configuration section <c>Audit</c>).</summary>
    public AuditOptions Audit { get; set; } = new();

    /// <summary>
    /// External issuers whose tokens are also accepted (configuration section <c>TrustedIssuers</c>, a list). Their tokens
    /// get at most the <c>keys</c> scope, unless their subject is on the issuer's <see cref="TrustedIssuerOptions.AdminSubjects"/>.
    /// </summary>
    public IList<TrustedIssuerOptions> TrustedIssuers { get; set; } = [];

    /// <summary>
    /// The reverse proxies (IP addresses or CIDR networks, configuration list <c>TrustedProxies</c>; default empty)
    /// whose <c>X-Forwarded-For</c> is believed: for a connection from one of them the client address — for the rate
    /// limits and the audit — is the right-most address of that header that is not itself a trusted proxy. From any
    /// other connection the header is ignored.
    /// </summary>
    public IList<string> TrustedProxies { get; set; } = [];

    /// <summary>
    /// Entitlement rules for trusted issuers' users (configuration section <c>Entitlements</c>): which models they may
    /// open, on how many devices, for how long (docs/deploy.md "Entitlement rules").
    /// </summary>
    public EntitlementOptions Entitlements { get; set; } = new();

    /// <summary>
    /// Device attestation as a release policy (configuration section <c>Attestation</c>): the challenges, the pinned
    /// roots and status list, and the named policies licences and entitlement rules refer to (docs/protocol.md section 2.6).
    /// </summary>
    public AttestationOptions Attestation { get; set; } = new();

    internal ServerOptions Copy()
    {
        var copy = (ServerOptions)MemberwiseClone();
        copy.MasterKey = MasterKey is null ? null! : MasterKey.Copy();
        copy.Metrics = Metrics is null ? null! : Metrics.Copy();
        copy.Database = Database is null ? null! : Database.Copy();
        copy.Audit = Audit is null ? null! : Audit.Copy();
        copy.TrustedIssuers = TrustedIssuers is null ? null! : TrustedIssuers.Select(issuer => issuer?.Copy()!).ToList();
        copy.TrustedProxies = TrustedProxies is null ? null! : [.. TrustedProxies];
        copy.Entitlements = Entitlements is null ? null! : Entitlements.Copy();
        copy.Attestation = Attestation is null ? null! : Attestation.Copy();
        return copy;
    }
}

/// <summary>Which master-key provider the server uses (docs/deploy.md), bound from the <c>MasterKey</c> section.</summary>
public sealed class MasterKeyOptions
{
    /// <summary>The file provider: <c>master.keys</c> in the data directory (the default).</summary>
    public const string File = "file";

    /// <summary>The PKCS#11 provider: AES-256 keys generated inside an HSM token, never extractable.</summary>
    public const string Pkcs11 = "pkcs11";

    /// <summary><c>file</c> (default) or <c>pkcs11</c> (<c>MasterKey:Provider</c>).</summary>
    public string Provider { get; set; } = File;

    /// <summary>PKCS#11: the module (shared library) path, e.g. <c>/usr/lib/softhsm/libsofthsm2.so</c>.</summary>
    public string? Pkcs11Module { get; set; }

    /// <summary>PKCS#11: the label of the token that holds the master keys.</summary>
    public string? TokenLabel { get; set; }

    /// <summary>PKCS#11: the label prefix of the master-key objects; version N is <c>&lt;KeyLabel&gt;-vN</c>.</summary>
    public string KeyLabel { get; set; } = "modelseal-master";

    /// <summary>PKCS#11: a file (owner-only) holding the token's user PIN. Exactly one of this and <see cref="PinEnvironmentVariable"/>.</summary>
    public string? PinFile { get; set; }

    /// <summary>PKCS#11: the name of an environment variable holding the user PIN (the PIN itself is never configuration).</summary>
    public string? PinEnvironmentVariable { get; set; }

    /// <summary>PKCS#11: create <c>&lt;KeyLabel&gt;-v1</c> in the token when no version exists and no data key needs one (default true).</summary>
    public bool CreateIfMissing { get; set; } = true;

    internal MasterKeyOptions Copy() => (MasterKeyOptions)MemberwiseClone();
}

/// <summary>The metrics the server exposes (docs/deploy.md "Observability"), bound from the <c>Metrics</c> section.</summary>
public sealed class MetricsOptions
{
    /// <summary>
    /// Serves the Prometheus scrape endpoint <c>GET /metrics</c> on the server's listener, unauthenticated
    /// (<c>Metrics:Enabled</c>, default true). Set false to collect no metrics and map no endpoint.
    /// </summary>
    public bool Enabled { get; set; } = true;

    internal MetricsOptions Copy() => (MetricsOptions)MemberwiseClone();
}

/// <summary>Which database the server uses (docs/deploy.md), bound from the <c>Database</c> section.</summary>
public sealed class DatabaseOptions
{
    /// <summary>SQLite: <c>modelseal.db</c> in the data directory, for one server instance (the default).</summary>
    public const string Sqlite = "sqlite";

    /// <summary>PostgreSQL (14 or newer), shared by any number of server instances.</summary>
    public const string Postgres = "postgres";

    /// <summary><c>sqlite</c> (default) or <c>postgres</c> (<c>Database:Provider</c>).</summary>
    public string Provider { get; set; } = Sqlite;

    /// <summary>
    /// PostgreSQL: the Npgsql connection string, e.g. <c>Host=db;Database=modelseal;Username=keyserver</c>. Leave the
    /// password out of it: Npgsql reads it from <c>PGPASSWORD</c> or a <c>PGPASSFILE</c>. Exactly one of this and
    /// <see cref="ConnectionStringEnvironmentVariable"/>.
    /// </summary>
    public string? ConnectionString { get; set; }

    /// <summary>PostgreSQL: the name of an environment variable holding the whole connection string (password included).</summary>
    public string? ConnectionStringEnvironmentVariable { get; set; }

    internal DatabaseOptions Copy() => (DatabaseOptions)MemberwiseClone();
}

/// <summary>
/// The audit log's refusal coalescing and signed checkpoints (docs/protocol.md sections 4.2 and 4.3), bound from the
/// <c>Audit</c> section.
/// </summary>
public sealed class AuditOptions
{
    /// <summary>
    /// Identical refusals within this window become one <c>key.refused</c> record with a <c>count</c>, written at the
    /// window's end (<c>Audit:RefusalWindow</c>, default 10 seconds, at most 5 minutes). Zero writes one record per
    /// refusal, each in its own transaction. A crash loses the counts of at most one window.
    /// </summary>
    public TimeSpan RefusalWindow { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The most distinct refusals held in one window (<c>Audit:MaxPendingRefusals</c>, default 10 000, 1 to 1 000 000):
    /// a refusal that would be one more is counted in the window's one overflow record instead.
    /// </summary>
    public int MaxPendingRefusals { get; set; } = 10_000;

    /// <summary>
    /// A signed checkpoint is written once this many records were appended since the last one (<c>Audit:CheckpointEvery</c>,
    /// default 1000; 0 turns this trigger off).
    /// </summary>
    public int CheckpointEvery { get; set; } = 1000;

    /// <summary>
    /// A signed checkpoint is written when records were appended and the last checkpoint is this old
    /// (<c>Audit:CheckpointInterval</c>, default 10 minutes, at most 1 day; zero turns this trigger off).
    /// </summary>
    public TimeSpan CheckpointInterval { get; set; } = TimeSpan.FromMinutes(10);

    internal AuditOptions Copy() => (AuditOptions)MemberwiseClone();
}

/// <summary>
/// An external token issuer (an OIDC provider, say) whose tokens the server accepts, bound from one item of the
/// <c>TrustedIssuers</c> list (docs/deploy.md "Trusted issuers"). Its signing keys come from exactly one of
/// <see cref="Authority"/> (OpenID Connect discovery: fetched, cached and refreshed) and <see cref="JwksFile"/> (read
/// at start, never fetched: for air-gapped sites).
/// </summary>
public sealed class TrustedIssuerOptions
{
    /// <summary><see cref="TokenKind"/>: the issuer's access tokens (RFC 9068), meant for an API such as this server.</summary>
    public const string AccessToken = "access";

    /// <summary><see cref="TokenKind"/>: the issuer's OpenID Connect ID tokens, issued to an app (its client id).</summary>
    public const string IdToken = "id";

    /// <summary>The issuer's <c>iss</c>, exactly (<c>TrustedIssuers:n:Issuer</c>); distinct, and not the server's own issuer.</summary>
    public string? Issuer { get; set; }

    /// <summary>
    /// Which tokens of this issuer are accepted (<c>TrustedIssuers:n:TokenKind</c>): <c>access</c> (the default), access
    /// tokens whose <c>aud</c> is one of <see cref="Audiences"/>; or <c>id</c>, OpenID Connect ID tokens whose only
    /// <c>aud</c> is one of <see cref="ClientIds"/>. An issuer is configured for one kind: the other is refused.
    /// </summary>
    public string TokenKind { get; set; } = AccessToken;

    /// <summary>
    /// The JOSE header <c>typ</c> values accepted on this issuer's tokens (<c>TrustedIssuers:n:TokenTypes</c>), compared
    /// as media types (case-insensitive, <c>application/</c> implied). Empty (the default): <c>at+jwt</c> for access
    /// tokens (RFC 9068 section 2.1); <c>JWT</c> or no <c>typ</c> for ID tokens (OpenID Connect defines none). When
    /// given, a token without <c>typ</c> is refused.
    /// </summary>
    public IList<string> TokenTypes { get; set; } = [];

    /// <summary>
    /// The <c>aud</c> values accepted on this issuer's tokens (<c>TrustedIssuers:n:Audiences</c>); empty (the default)
    /// means the server's own <see cref="ServerOptions.Audience"/>. Access tokens only.
    /// </summary>
    public IList<string> Audiences { get; set; } = [];

    /// <summary>
    /// The client ids of the apps whose ID tokens are accepted (<c>TrustedIssuers:n:ClientIds</c>): an ID token's
    /// <c>aud</c> must be exactly one of them (and its <c>azp</c>, when present, the same). Required for ID tokens,
    /// refused for access tokens.
    /// </summary>
    public IList<string> ClientIds { get; set; } = [];

    /// <summary>
    /// The longest lifetime accepted on this issuer's tokens (<c>TrustedIssuers:n:MaxLifetime</c>, default one hour,
    /// 1 second to 1 day): <c>exp</c> minus <c>iat</c> (or <c>nbf</c> when there is no <c>iat</c>). A token with
    /// neither <c>iat</c> nor <c>nbf</c> is refused, since its lifetime is unknown.
    /// </summary>
    public TimeSpan MaxLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// A <c>typ</c> value as the media type it names (RFC 7515 section 4.1.9): lower case, with <c>application/</c>
    /// prepended when it has no <c>/</c> (<c>at+jwt</c> → <c>application/at+jwt</c>).
    /// </summary>
    internal static string MediaType(string typ)
    {
        ArgumentNullException.ThrowIfNull(typ);
        string lower = typ.Trim().ToLowerInvariant();
        return lower.Contains('/', StringComparison.Ordinal) ? lower : "application/" + lower;
    }

    /// <summary>
    /// The JWS algorithms accepted on this issuer's tokens among <c>ES256</c>, <c>RS256</c> and <c>PS256</c>
    /// (<c>TrustedIssuers:n:Algorithms</c>); empty (the default) means all three. Each key is further limited to what
    /// it allows (its <c>kty</c>, <c>crv</c> and <c>alg</c>).
    /// </summary>
    public IList<string> Algorithms { get; set; } = [];

    /// <summary>
    /// A JWKS JSON file with the issuer's public signing keys (<c>TrustedIssuers:n:JwksFile</c>), read at start and never
    /// fetched. Exactly one of this and <see cref="Authority"/>.
    /// </summary>
    public string? JwksFile { get; set; }

    /// <summary>
    /// The issuer's OpenID Connect authority (<c>TrustedIssuers:n:Authority</c>), an <c>https://</c> URL (plain
    /// <c>http://</c> only to a loopback host): its discovery document <c>/.well-known/openid-configuration</c> and the
    /// JWKS its <c>jwks_uri</c> names are fetched, cached and refreshed; the document's <c>issuer</c> must be
    /// <see cref="Issuer"/>. Exactly one of this and <see cref="JwksFile"/>.
    /// </summary>
    public string? Authority { get; set; }

    /// <summary>
    /// With <see cref="Authority"/>: how often the discovery document and the JWKS are fetched again
    /// (<c>TrustedIssuers:n:AutomaticRefreshInterval</c>, default one hour, 5 minutes to 1 day), so that keys the issuer
    /// removed stop being accepted.
    /// </summary>
    public TimeSpan AutomaticRefreshInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// With <see cref="Authority"/>: the least time between two fetches (<c>TrustedIssuers:n:MinimumRefreshInterval</c>,
    /// default one minute, 1 second to <see cref="AutomaticRefreshInterval"/>). A token naming an unknown <c>kid</c>
    /// fetches again only when the last fetch is at least this old; a failed fetch is retried after it.
    /// </summary>
    public TimeSpan MinimumRefreshInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// The <c>sub</c> values of this issuer whose tokens with the <c>admin</c> scope are administrators
    /// (<c>TrustedIssuers:n:AdminSubjects</c>; default empty). Every other token of the issuer gets at most <c>keys</c>.
    /// </summary>
    public IList<string> AdminSubjects { get; set; } = [];

    internal TrustedIssuerOptions Copy()
    {
        var copy = (TrustedIssuerOptions)MemberwiseClone();
        copy.TokenTypes = TokenTypes is null ? null! : [.. TokenTypes];
        copy.Audiences = Audiences is null ? null! : [.. Audiences];
        copy.ClientIds = ClientIds is null ? null! : [.. ClientIds];
        copy.Algorithms = Algorithms is null ? null! : [.. Algorithms];
        copy.AdminSubjects = AdminSubjects is null ? null! : [.. AdminSubjects];
        return copy;
    }
}
