using System.Net;
using Microsoft.AspNetCore.Http;

namespace ModelSeal.Server.Configuration;

/// <summary>
/// Checks <see cref="ServerOptions"/> before anything is created (no data directory, no database, no key):
/// <see cref="ServerHost.Build"/> and the offline migrations call it first. Each refusal names the configuration key
/// and says what to set. Files are only checked for existence here; <see cref="ServerHost.Build"/> then reads each
/// trusted issuer's JWKS file (Security.TrustedIssuer.LoadAll), still before creating anything. Nothing here depends
/// on another namespace of the server (the architecture tests forbid namespace cycles).
/// </summary>
internal static class ServerOptionsValidator
{
    /// <summary>The JWS algorithms an external issuer may use.</summary>
    public static readonly IReadOnlyList<string> IssuerAlgorithms = ["ES256", "RS256", "PS256"];

    /// <summary>
    /// Refuses an admin credential output path inside the data directory (a copy of the directory must not hold the
    /// credential). <paramref name="setting"/> names it in the message.
    /// </summary>
    public static void RequireOutsideDataDirectory(string outFile, string dataDirectory, string setting)
    {
        string file = Path.GetFullPath(outFile);
        string directory = Path.TrimEndingDirectorySeparator(Path.GetFullPath(dataDirectory));
        StringComparison comparison = OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        if (file.Equals(directory, comparison) || file.StartsWith(directory + Path.DirectorySeparatorChar, comparison))
        {
            throw new ServerConfigurationException($"{setting} '{file}' is inside the data directory '{directory}': a copy of the data directory must not hold the admin credential. Give a path outside it (e.g. in your secret store's staging directory).");
        }
    }

    /// <exception cref="ServerConfigurationException">A setting is missing, malformed or unsafe.</exception>
    public static void Validate(ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.DataDirectory))
        {
            throw new ServerConfigurationException("No data directory is configured; set DataDirectory (modelseal serve --data DIR).");
        }

        if (string.IsNullOrWhiteSpace(options.Urls))
        {
            throw new ServerConfigurationException("No listen address is configured; set Urls, e.g. http://127.0.0.1:5380 (modelseal serve --urls).");
        }

        foreach (string url in options.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            ValidateUrl(url, options.AllowNonLoopbackHttp);
        }

        if (string.IsNullOrWhiteSpace(options.Issuer) || string.IsNullOrWhiteSpace(options.Audience))
        {
            throw new ServerConfigurationException("Issuer and Audience (of the server's own tokens) must not be empty; leave them at their defaults unless clients expect other values.");
        }

        if (options.LeaseDuration <= TimeSpan.Zero || options.LeaseDuration > TimeSpan.FromDays(366))
        {
            throw new ServerConfigurationException("LeaseDuration must be positive and at most 366 days, e.g. 7.00:00:00.");
        }

        if (options.TokenLifetime < TimeSpan.FromSeconds(1) || options.TokenLifetime > TimeSpan.FromDays(1))
        {
            throw new ServerConfigurationException("TokenLifetime must be between 1 second and 1 day, e.g. 00:15:00.");
        }

        if (options.ReleasesPerMinutePerSubject < 1 || options.RequestsPerMinutePerClient < 1)
        {
            throw new ServerConfigurationException("ReleasesPerMinutePerSubject and RequestsPerMinutePerClient must be at least 1 per minute.");
        }

        if (options.Time is null)
        {
            throw new ServerConfigurationException("ServerOptions.Time must not be null (use TimeProvider.System).");
        }

        if (!string.IsNullOrWhiteSpace(options.AdminCredentialOut))
        {
            RequireOutsideDataDirectory(options.AdminCredentialOut, options.DataDirectory, "AdminCredentialOut");
        }

        ValidateMasterKey(options.MasterKey);
        ValidateDatabase(options.Database);

        if (options.Metrics is null)
        {
            throw new ServerConfigurationException("ServerOptions.Metrics must not be null.");
        }

        ValidateAudit(options.Audit);
        ValidateTrustedIssuers(options);
        ValidateTrustedProxies(options.TrustedProxies);
        ValidateAttestation(options.Attestation);
        ValidateEntitlements(options.Entitlements, options.TrustedIssuers, options.Attestation.Policies.Keys);
    }

    /// <summary>The security levels an Android policy may require.</summary>
    public static readonly IReadOnlyList<string> AndroidSecurityLevels = ["TrustedEnvironment", "StrongBox"];

    /// <summary>
    /// Checks the <c>Attestation</c> section: lifetimes in range, the files that are given exist, and every named
    /// policy well formed (a valid name, at least one platform section, each with what it must list). The files are
    /// read when the server builds (Attestation.AttestationTrust).
    /// </summary>
    /// <exception cref="ServerConfigurationException">The section is malformed.</exception>
    public static void ValidateAttestation(AttestationOptions? options)
    {
        if (options is null || options.Android is null || options.Apple is null || options.Policies is null)
        {
            throw new ServerConfigurationException("ServerOptions.Attestation and its Android, Apple and Policies must not be null.");
        }

        if (options.ChallengeLifetime < TimeSpan.FromSeconds(30) || options.ChallengeLifetime > TimeSpan.FromHours(1))
        {
            throw new ServerConfigurationException("Attestation:ChallengeLifetime must be from 00:00:30 to 01:00:00, e.g. 00:05:00.");
        }

        if (options.ReverifyInterval != TimeSpan.Zero && (options.ReverifyInterval < TimeSpan.FromMinutes(1) || options.ReverifyInterval > TimeSpan.FromDays(366)))
        {
            throw new ServerConfigurationException("Attestation:ReverifyInterval must be 00:00:00 (no periodic re-verification) or from 00:01:00 to 366 days, e.g. 1.00:00:00.");
        }

        RequireFile(options.Android.RootsFile, "Attestation:Android:RootsFile", "a PEM file of the pinned root certificates (leave it out for Google's roots)");
        RequireFile(options.Android.StatusListFile, "Attestation:Android:StatusListFile", "the status list JSON fetched from https://android.googleapis.com/attestation/status (docs/deploy.md)");
        RequireFile(options.Apple.RootFile, "Attestation:Apple:RootFile", "a PEM file with the pinned root (leave it out for the Apple App Attestation Root CA)");
        foreach ((string name, AttestationPolicyOptions? policy) in options.Policies)
        {
            string key = "Attestation:Policies:" + name;
            if (string.IsNullOrEmpty(name) || name.Length > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_'))
            {
                throw new ServerConfigurationException($"{key}: a policy name is 1 to 64 of A-Z a-z 0-9 . - _ (e.g. \"store-apps\"); licences and rules name it.");
            }

            if (policy is null || (policy.Android is null && policy.Apple is null))
            {
                throw new ServerConfigurationException($"{key} has neither an Android nor an Apple section; give at least one (a policy with one section accepts only that platform's evidence).");
            }

            if (policy.Android is { } android)
            {
                if (!AndroidSecurityLevels.Contains(android.MinimumSecurityLevel))
                {
                    throw new ServerConfigurationException($"{key}:Android:MinimumSecurityLevel must be TrustedEnvironment (TEE or StrongBox) or StrongBox.");
                }

                RequireSome(android.PackageNames, key + ":Android:PackageNames", "the app's package names (e.g. com.example.app)");
                RequireSome(android.SigningCertificateDigests, key + ":Android:SigningCertificateDigests", "the SHA-256 digests of the app's signing certificates, 64 hex digits each");
                if (android.SigningCertificateDigests.Any(d => d.Length != 64 || !d.All(char.IsAsciiHexDigit)))
                {
                    throw new ServerConfigurationException($"{key}:Android:SigningCertificateDigests: each item is a SHA-256 digest as 64 hex digits (apksigner verify --print-certs shows it).");
                }
            }

            if (policy.Apple is { } apple)
            {
                RequireSome(apple.AppIds, key + ":Apple:AppIds", "the App IDs, TEAMID.bundle.id");
                if (apple.ReassertAfter is { } reassert && (reassert < TimeSpan.FromMinutes(1) || reassert > TimeSpan.FromDays(366)))
                {
                    throw new ServerConfigurationException($"{key}:Apple:ReassertAfter must be from 00:01:00 to 366 days, e.g. 7.00:00:00, or left out.");
                }
            }
        }
    }

    /// <summary>A list that must have at least one item, none empty.</summary>
    private static void RequireSome(IList<string>? items, string key, string what)
    {
        if (items is null || items.Count == 0)
        {
            throw new ServerConfigurationException($"{key} is empty; list {what} (a policy that allows nothing would refuse every device).");
        }

        RequireItems(items, key, what);
    }

    private static void RequireFile(string? path, string key, string what)
    {
        if (path is not null && (string.IsNullOrWhiteSpace(path) || !File.Exists(path)))
        {
            throw new ServerConfigurationException($"{key} '{path}' does not exist; give {what}.");
        }
    }

    /// <summary>
    /// Checks the <c>Entitlements</c> section: rules inline or in a file, not both; the inline rules validated
    /// (<see cref="EntitlementRules.Parse"/>), each for an issuer of <paramref name="trustedIssuers"/>. A rule file is
    /// read and validated when the server builds its services.
    /// </summary>
    /// <exception cref="ServerConfigurationException">The section is malformed.</exception>
    public static void ValidateEntitlements(EntitlementOptions? options, IEnumerable<TrustedIssuerOptions?>? trustedIssuers, IEnumerable<string>? attestationPolicies = null)
    {
        if (options is null)
        {
            throw new ServerConfigurationException("ServerOptions.Entitlements must not be null.");
        }

        if (options.File is not null && options.Rules is { Count: > 0 })
        {
            throw new ServerConfigurationException("Entitlements:File and Entitlements:Rules are both set; keep the rules in one place: the file (reloaded when it changes) or the list (fixed until a restart).");
        }

        if (options.File is not null && string.IsNullOrWhiteSpace(options.File))
        {
            throw new ServerConfigurationException("Entitlements:File is empty; give the path of the rule file, or leave it out.");
        }

        EntitlementRules.Parse(options.Rules, "Entitlements:Rules", trustedIssuers, attestationPolicies);
    }

    /// <summary>Checks the refusal window and the checkpoint triggers (whole seconds, within their ranges).</summary>
    /// <exception cref="ServerConfigurationException">A value is out of range.</exception>
    public static void ValidateAudit(AuditOptions? options)
    {
        if (options is null)
        {
            throw new ServerConfigurationException("ServerOptions.Audit must not be null.");
        }

        if (options.RefusalWindow < TimeSpan.Zero || options.RefusalWindow > TimeSpan.FromMinutes(5) || options.RefusalWindow.Ticks % TimeSpan.TicksPerSecond != 0)
        {
            throw new ServerConfigurationException("Audit:RefusalWindow must be whole seconds from 00:00:00 (one record per refusal) to 00:05:00, e.g. 00:00:10.");
        }

        if (options.MaxPendingRefusals is < 1 or > 1_000_000)
        {
            throw new ServerConfigurationException("Audit:MaxPendingRefusals must be from 1 to 1000000, e.g. 10000.");
        }

        if (options.CheckpointEvery < 0)
        {
            throw new ServerConfigurationException("Audit:CheckpointEvery must be 0 (no checkpoint by count) or a number of records, e.g. 1000.");
        }

        if (options.CheckpointInterval < TimeSpan.Zero || options.CheckpointInterval > TimeSpan.FromDays(1) || options.CheckpointInterval.Ticks % TimeSpan.TicksPerSecond != 0)
        {
            throw new ServerConfigurationException("Audit:CheckpointInterval must be whole seconds from 00:00:00 (no checkpoint by time) to 1.00:00:00, e.g. 00:10:00.");
        }
    }

    /// <summary>Checks the master-key options without opening any module or token (the module file must exist).</summary>
    /// <exception cref="ServerConfigurationException">The options are incomplete or contradictory.</exception>
    public static void ValidateMasterKey(MasterKeyOptions? options)
    {
        if (options is null)
        {
            throw new ServerConfigurationException("ServerOptions.MasterKey must not be null (leave it at its default for the file provider).");
        }

        if (string.Equals(options.Provider, MasterKeyOptions.File, StringComparison.OrdinalIgnoreCase))
        {
            return;
        }

        if (!string.Equals(options.Provider, MasterKeyOptions.Pkcs11, StringComparison.OrdinalIgnoreCase))
        {
            throw new ServerConfigurationException($"MasterKey:Provider is '{options.Provider}'; it must be 'file' (master.keys in the data directory) or 'pkcs11' (an HSM token).");
        }

        if (string.IsNullOrWhiteSpace(options.Pkcs11Module))
        {
            throw new ServerConfigurationException("MasterKey:Provider is 'pkcs11' but MasterKey:Pkcs11Module is not set; give the path of the token's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so.");
        }

        if (!File.Exists(options.Pkcs11Module))
        {
            throw new ServerConfigurationException($"The PKCS#11 module '{options.Pkcs11Module}' (MasterKey:Pkcs11Module) does not exist.");
        }

        if (string.IsNullOrWhiteSpace(options.TokenLabel))
        {
            throw new ServerConfigurationException("MasterKey:Provider is 'pkcs11' but MasterKey:TokenLabel is not set; give the label of the token that holds the master keys.");
        }

        if (string.IsNullOrWhiteSpace(options.KeyLabel) || options.KeyLabel.Length > 64 || options.KeyLabel.Any(char.IsControl))
        {
            throw new ServerConfigurationException("MasterKey:KeyLabel must be 1 to 64 printable characters (versions are labelled <KeyLabel>-v1, -v2, …).");
        }

        bool file = !string.IsNullOrWhiteSpace(options.PinFile);
        bool variable = !string.IsNullOrWhiteSpace(options.PinEnvironmentVariable);
        if (file == variable)
        {
            throw new ServerConfigurationException("MasterKey:Provider is 'pkcs11': set exactly one of MasterKey:PinFile (an owner-only file holding the user PIN) and MasterKey:PinEnvironmentVariable (the name of a variable holding it). The PIN itself is never configuration or a command-line argument.");
        }
    }

    /// <exception cref="ServerConfigurationException">The database options are incomplete or contradictory.</exception>
    public static void ValidateDatabase(DatabaseOptions? options)
    {
        if (options is null)
        {
            throw new ServerConfigurationException("ServerOptions.Database must not be null.");
        }

        if (options.Provider is not (DatabaseOptions.Sqlite or DatabaseOptions.Postgres))
        {
            throw new ServerConfigurationException($"Unknown database provider '{options.Provider}' (Database:Provider); use '{DatabaseOptions.Sqlite}' (default, one instance) or '{DatabaseOptions.Postgres}'.");
        }

        bool hasString = !string.IsNullOrWhiteSpace(options.ConnectionString);
        bool hasVariable = !string.IsNullOrWhiteSpace(options.ConnectionStringEnvironmentVariable);
        if (options.Provider == DatabaseOptions.Sqlite && (hasString || hasVariable))
        {
            throw new ServerConfigurationException($"A database connection string is configured but the provider is '{DatabaseOptions.Sqlite}' (Database:Provider), which keeps modelseal.db in the data directory; set Database:Provider to '{DatabaseOptions.Postgres}' or remove the connection string.");
        }

        if (options.Provider == DatabaseOptions.Postgres && hasString == hasVariable)
        {
            throw new ServerConfigurationException("The PostgreSQL store needs exactly one of Database:ConnectionString (password from PGPASSWORD or PGPASSFILE) and Database:ConnectionStringEnvironmentVariable (modelseal serve --database postgres --connection-string-env VAR).");
        }

        if (hasVariable && string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(options.ConnectionStringEnvironmentVariable!)))
        {
            throw new ServerConfigurationException($"The environment variable '{options.ConnectionStringEnvironmentVariable}' (Database:ConnectionStringEnvironmentVariable) is not set or empty; set it to the PostgreSQL connection string.");
        }
    }

    private static void ValidateTrustedIssuers(ServerOptions options)
    {
        if (options.TrustedIssuers is null)
        {
            throw new ServerConfigurationException("ServerOptions.TrustedIssuers must not be null (leave it empty to accept only the server's own tokens).");
        }

        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < options.TrustedIssuers.Count; i++)
        {
            string key = $"TrustedIssuers:{i}";
            TrustedIssuerOptions issuer = options.TrustedIssuers[i] ?? throw new ServerConfigurationException($"{key} is empty; give at least its Issuer and its Authority or JwksFile.");
            if (string.IsNullOrWhiteSpace(issuer.Issuer))
            {
                throw new ServerConfigurationException($"{key}:Issuer is not set; give the issuer's 'iss' exactly, e.g. https://idp.example/realms/apps.");
            }

            if (string.Equals(issuer.Issuer, options.Issuer, StringComparison.Ordinal))
            {
                throw new ServerConfigurationException($"{key}:Issuer is the server's own Issuer '{options.Issuer}'; a trusted issuer must be another one.");
            }

            if (seen.TryGetValue(issuer.Issuer, out int first))
            {
                throw new ServerConfigurationException($"{key}:Issuer '{issuer.Issuer}' is also TrustedIssuers:{first}:Issuer; give each issuer once (one JwksFile may hold several keys).");
            }

            seen.Add(issuer.Issuer, i);
            ValidateTokenKind(issuer, key);
            RequireItems(issuer.Audiences, $"{key}:Audiences", "the audience tokens of this issuer carry (empty: the server's Audience)");
            RequireItems(issuer.AdminSubjects, $"{key}:AdminSubjects", "a 'sub' of this issuer that is an administrator");
            RequireItems(issuer.Algorithms, $"{key}:Algorithms", string.Join(", ", IssuerAlgorithms));
            for (int a = 0; a < issuer.Algorithms.Count; a++)
            {
                if (!IssuerAlgorithms.Contains(issuer.Algorithms[a], StringComparer.Ordinal))
                {
                    throw new ServerConfigurationException($"{key}:Algorithms:{a} is '{issuer.Algorithms[a]}'; the accepted algorithms are {string.Join(", ", IssuerAlgorithms)} (none and HMAC are never accepted).");
                }
            }

            ValidateKeySource(issuer, key);
        }
    }

    /// <summary>
    /// Where the issuer's keys come from: exactly one of Authority (an absolute https URL, or http to a loopback host —
    /// the rule of the listen addresses — with refresh intervals in range) and JwksFile.
    /// </summary>
    private static void ValidateKeySource(TrustedIssuerOptions issuer, string key)
    {
        bool file = !string.IsNullOrWhiteSpace(issuer.JwksFile);
        bool authority = !string.IsNullOrWhiteSpace(issuer.Authority);
        if (file == authority)
        {
            throw new ServerConfigurationException(file
                ? $"{key} sets both Authority and JwksFile; give exactly one: {key}:Authority (the keys are discovered and refreshed over HTTPS) or {key}:JwksFile (a JWKS file read at start, for sites that cannot reach the issuer)."
                : $"{key} has neither Authority nor JwksFile; set {key}:Authority to the issuer's OpenID Connect authority (https://…, its /.well-known/openid-configuration is fetched) or {key}:JwksFile to a JWKS file with its public signing keys.");
        }

        if (authority)
        {
            if (!Uri.TryCreate(issuer.Authority, UriKind.Absolute, out Uri? uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp) ||
                !string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.Fragment) || !string.IsNullOrEmpty(uri.UserInfo))
            {
                throw new ServerConfigurationException($"{key}:Authority is '{issuer.Authority}'; give the issuer's authority as an absolute https:// URL without query or fragment, e.g. https://idp.example/realms/apps (its /.well-known/openid-configuration is fetched).");
            }

            if (uri.Scheme == Uri.UriSchemeHttp && !uri.IsLoopback)
            {
                throw new ServerConfigurationException($"{key}:Authority '{issuer.Authority}' is plain http:// to a host that is not loopback: the issuer's keys would cross the network unauthenticated, and whoever answers could sign tokens the server accepts. Use https:// (plain http:// is allowed only to localhost, 127.0.0.0/8 and [::1], for tests).");
            }

            if (issuer.AutomaticRefreshInterval < TimeSpan.FromMinutes(5) || issuer.AutomaticRefreshInterval > TimeSpan.FromDays(1))
            {
                throw new ServerConfigurationException($"{key}:AutomaticRefreshInterval must be between 5 minutes and 1 day, e.g. 01:00:00 (how often the issuer's discovery document and keys are fetched again).");
            }

            if (issuer.MinimumRefreshInterval < TimeSpan.FromSeconds(1) || issuer.MinimumRefreshInterval > issuer.AutomaticRefreshInterval)
            {
                throw new ServerConfigurationException($"{key}:MinimumRefreshInterval must be between 1 second and {key}:AutomaticRefreshInterval, e.g. 00:01:00 (the least time between two fetches, such as those an unknown 'kid' forces).");
            }
        }
    }

    /// <summary>
    /// Each trusted proxy is one IP address (<c>10.0.0.5</c>, <c>2001:db8::5</c>) or a network in CIDR notation with its
    /// host bits zero (<c>10.0.0.0/8</c>, <c>2001:db8::/48</c>); a network that holds every address is refused, since
    /// then any client could choose its own address with <c>X-Forwarded-For</c>.
    /// </summary>
    public static void ValidateTrustedProxies(IList<string>? proxies)
    {
        const string Shape = "an IP address (10.0.0.5, 2001:db8::5) or a network in CIDR notation (10.0.0.0/8, 2001:db8::/48)";
        RequireItems(proxies, "TrustedProxies", Shape);
        for (int i = 0; i < proxies!.Count; i++)
        {
            string key = $"TrustedProxies:{i}";
            string proxy = proxies[i].Trim();
            if (proxy.Contains('/', StringComparison.Ordinal))
            {
                bool parsed = IPAddress.TryParse(proxy[..proxy.IndexOf('/', StringComparison.Ordinal)], out IPAddress? address);
                if (!IPNetwork.TryParse(proxy, out IPNetwork network) || !network.BaseAddress.Equals(address))
                {
                    throw new ServerConfigurationException(parsed
                        ? $"{key} is '{proxy}', which is not a network: the prefix length must fit the address and the bits after it must be zero (e.g. 10.0.0.0/8, 2001:db8::/48)."
                        : $"{key} is '{proxy}'; each trusted proxy is {Shape}.");
                }

                if (network.PrefixLength == 0)
                {
                    throw new ServerConfigurationException($"{key} is '{proxy}', which holds every address: any client could then set its own address with X-Forwarded-For. List the proxies' own addresses or networks.");
                }
            }
            else if (!IPAddress.TryParse(proxy, out IPAddress? address) || (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && proxy.Count(c => c == '.') != 3))
            {
                throw new ServerConfigurationException($"{key} is '{proxy}'; each trusted proxy is {Shape}.");
            }
        }
    }

    /// <summary>The token kind and what goes with it: typ values, client ids (ID tokens) or audiences (access tokens), the lifetime.</summary>
    private static void ValidateTokenKind(TrustedIssuerOptions issuer, string key)
    {
        bool idTokens = string.Equals(issuer.TokenKind, TrustedIssuerOptions.IdToken, StringComparison.Ordinal);
        if (!idTokens && !string.Equals(issuer.TokenKind, TrustedIssuerOptions.AccessToken, StringComparison.Ordinal))
        {
            throw new ServerConfigurationException($"{key}:TokenKind is '{issuer.TokenKind}'; it must be '{TrustedIssuerOptions.AccessToken}' (the default: the issuer's access tokens for this server) or '{TrustedIssuerOptions.IdToken}' (OpenID Connect ID tokens issued to the apps listed in ClientIds).");
        }

        RequireItems(issuer.TokenTypes, $"{key}:TokenTypes", "a JOSE 'typ' value accepted on this issuer's tokens, e.g. at+jwt");
        for (int t = 0; idTokens && t < issuer.TokenTypes.Count; t++)
        {
            if (TrustedIssuerOptions.MediaType(issuer.TokenTypes[t]) == "application/at+jwt")
            {
                throw new ServerConfigurationException($"{key}:TokenTypes:{t} is '{issuer.TokenTypes[t]}', the type of access tokens, but {key}:TokenKind is '{TrustedIssuerOptions.IdToken}'; an ID token is never typed at+jwt (accepting it would take access tokens for ID tokens). Use JWT, or leave TokenTypes empty.");
            }
        }

        RequireItems(issuer.ClientIds, $"{key}:ClientIds", "the client id of an app whose ID tokens are accepted");
        if (idTokens && issuer.ClientIds.Count == 0)
        {
            throw new ServerConfigurationException($"{key}:TokenKind is '{TrustedIssuerOptions.IdToken}' but {key}:ClientIds is empty; list the client ids of the apps whose ID tokens are accepted (an ID token's 'aud' is the app's client id).");
        }

        if (idTokens && issuer.Audiences is { Count: > 0 })
        {
            throw new ServerConfigurationException($"{key}:Audiences is set but {key}:TokenKind is '{TrustedIssuerOptions.IdToken}'; an ID token's 'aud' is the app's client id, so list it in {key}:ClientIds instead.");
        }

        if (!idTokens && issuer.ClientIds.Count > 0)
        {
            throw new ServerConfigurationException($"{key}:ClientIds is set but {key}:TokenKind is '{TrustedIssuerOptions.AccessToken}'; set TokenKind to '{TrustedIssuerOptions.IdToken}' to accept ID tokens, or list the access tokens' audiences in {key}:Audiences.");
        }

        if (issuer.MaxLifetime < TimeSpan.FromSeconds(1) || issuer.MaxLifetime > TimeSpan.FromDays(1))
        {
            throw new ServerConfigurationException($"{key}:MaxLifetime must be between 1 second and 1 day, e.g. 01:00:00 (the longest 'exp' minus 'iat' accepted on this issuer's tokens).");
        }
    }

    private static void RequireItems(IList<string>? items, string key, string what)
    {
        if (items is null)
        {
            throw new ServerConfigurationException($"{key} must not be null (leave it empty for the default).");
        }

        for (int i = 0; i < items.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(items[i]))
            {
                throw new ServerConfigurationException($"{key}:{i} is empty; each item is {what}.");
            }
        }
    }

    private static void ValidateUrl(string url, bool allowNonLoopbackHttp)
    {
        BindingAddress address;
        try
        {
            address = BindingAddress.Parse(url);
        }
        catch (FormatException e)
        {
            throw new ServerConfigurationException($"The listen address '{url}' (Urls) is not a URL like http://127.0.0.1:5380.", e);
        }

        bool https = string.Equals(address.Scheme, "https", StringComparison.OrdinalIgnoreCase);
        if (!https && !string.Equals(address.Scheme, "http", StringComparison.OrdinalIgnoreCase))
        {
            throw new ServerConfigurationException($"The listen address '{url}' (Urls) must start with http:// or https://.");
        }

        bool loopback = address.IsUnixPipe ||
            string.Equals(address.Host, "localhost", StringComparison.OrdinalIgnoreCase) ||
            (IPAddress.TryParse(address.Host.Trim('[', ']'), out IPAddress? ip) && IPAddress.IsLoopback(ip));
        if (!https && !loopback && !allowNonLoopbackHttp)
        {
            throw new ServerConfigurationException($"Refusing plain HTTP on the non-loopback address '{url}' (Urls): keys and tokens would cross the network unencrypted. Listen on 127.0.0.1 behind a TLS-terminating proxy, use https://, or set AllowNonLoopbackHttp if TLS is terminated in front of this address.");
        }
    }
}
