using System.Net;
using Microsoft.AspNetCore.Http;
using ModelSeal.Server.MasterKeys;
using ModelSeal.Server.Security;

namespace ModelSeal.Server.Configuration;

/// <summary>
/// Checks <see cref="ServerOptions"/> before anything is created (no data directory, no database, no key):
/// <see cref="ServerHost.Build"/> and the offline migrations call it first. Each refusal names the configuration key
/// and says what to set.
/// </summary>
internal static class ServerOptionsValidator
{
    /// <summary>The JWS algorithms an external issuer may use.</summary>
    public static readonly IReadOnlyList<string> IssuerAlgorithms = ["ES256", "RS256", "PS256"];

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

        MasterKeyProviders.Validate(options.MasterKey);
        ValidateDatabase(options.Database);

        if (options.Metrics is null)
        {
            throw new ServerConfigurationException("ServerOptions.Metrics must not be null.");
        }

        ValidateTrustedIssuers(options);
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
            TrustedIssuerOptions issuer = options.TrustedIssuers[i] ?? throw new ServerConfigurationException($"{key} is empty; give at least its Issuer and JwksFile.");
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

            if (string.IsNullOrWhiteSpace(issuer.JwksFile))
            {
                throw new ServerConfigurationException($"{key}:JwksFile is not set; the server never fetches keys over the network, so give the issuer's public signing keys as a JWKS file.");
            }

            // Reads the file: refused unless it holds at least one key usable with the issuer's algorithms.
            TrustedIssuer.Load(issuer, i, options.Audience);
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
