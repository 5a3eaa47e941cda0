using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;
using ModelSeal.Server.Diagnostics;

namespace ModelSeal.Server.Http;

/// <summary>
/// The keys of a trusted issuer configured by its <c>Authority</c> (docs/deploy.md "Trusted issuers"): its OpenID
/// Connect discovery document and the JWKS its <c>jwks_uri</c> names, fetched and parsed by the maintained
/// Microsoft.IdentityModel.Protocols.OpenIdConnect retriever, held as the last good key set, and fetched again
/// <list type="bullet">
/// <item>every <c>AutomaticRefreshInterval</c> (so that a key the issuer removed stops being accepted),</item>
/// <item>when a token names a <c>kid</c> the set does not hold — at most once per <c>MinimumRefreshInterval</c>, and the
/// request that asked waits for that fetch, so the first token signed with a rotated-in key is accepted,</item>
/// <item>after a failed fetch, once <c>MinimumRefreshInterval</c> has passed (sooner before the first success: 1 s,
/// 2 s, 4 s, … up to it).</item>
/// </list>
/// A failed fetch — unreachable, not JSON, a document whose <c>issuer</c> is not the configured one, no usable key —
/// changes nothing: the last good keys stay in use. Until the first success the issuer has no keys (its tokens get 401)
/// and the server reports itself not ready.
/// <para>
/// The schedule is this class's rather than <c>ConfigurationManager&lt;T&gt;</c>'s: that one runs on the system clock
/// (its clock is internal), refreshes for an unknown <c>kid</c> on a background thread nobody can await (so the request
/// that brought the new <c>kid</c> fails even when the key is there), and, until its first success, fetches again on every
/// call — every token of an unreachable issuer would be one more request to it. Everything here runs on the server's
/// <see cref="TimeProvider"/>.
/// </para>
/// </summary>
internal sealed class IssuerDiscovery : IDisposable
{
    /// <summary>The first retry after a failed first fetch; doubled each time up to <c>MinimumRefreshInterval</c>.</summary>
    public static readonly TimeSpan FirstRetry = TimeSpan.FromSeconds(1);

    /// <summary>How long one fetch (the discovery document and the JWKS) may take.</summary>
    public static readonly TimeSpan FetchTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The largest document accepted (discovery document or JWKS).</summary>
    public const int MaxDocumentBytes = 1024 * 1024;

    private readonly HttpClient _http;
    private readonly IDocumentRetriever _documents;
    private readonly IReadOnlyList<string> _algorithms;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private Task<bool>? _inFlight;
    private DateTimeOffset? _lastAttempt;
    private int _attempts;
    private ITimer? _timer;
    private bool _stopped;
    private TimeSpan _retry;
    private TaskCompletionSource _attempted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile IssuerKeySet? _current;
    private ILogger _logger = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

    public IssuerDiscovery(string issuer, string key, Uri authority, IReadOnlyList<string> algorithms, TimeSpan automaticRefreshInterval, TimeSpan minimumRefreshInterval, TimeProvider time)
    {
        Issuer = issuer;
        Key = key;
        Authority = authority;
        MetadataAddress = new Uri(authority.AbsoluteUri.TrimEnd('/') + "/.well-known/openid-configuration");
        _algorithms = algorithms;
        AutomaticRefreshInterval = automaticRefreshInterval;
        MinimumRefreshInterval = minimumRefreshInterval;
        _time = time;
        _retry = FirstRetry < minimumRefreshInterval ? FirstRetry : minimumRefreshInterval;

        // No redirects: each address is checked (https, or http to loopback) before it is asked, and a redirect would not be.
        _http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            Timeout = FetchTimeout,
            MaxResponseContentBufferSize = MaxDocumentBytes,
        };
        _documents = new SecureDocumentRetriever(new HttpDocumentRetriever(_http) { RequireHttps = !authority.IsLoopback });
    }

    /// <summary>The configured issuer (<c>iss</c>); the discovery document's <c>issuer</c> must be exactly this.</summary>
    public string Issuer { get; }

    /// <summary>The configuration key of this issuer (<c>TrustedIssuers:n</c>), for messages.</summary>
    public string Key { get; }

    public Uri Authority { get; }

    /// <summary><c>{Authority}/.well-known/openid-configuration</c>.</summary>
    public Uri MetadataAddress { get; }

    public TimeSpan AutomaticRefreshInterval { get; }

    public TimeSpan MinimumRefreshInterval { get; }

    /// <summary>The last good key set, or null before the first successful fetch.</summary>
    public IssuerKeySet? Current => _current;

    /// <summary>How many fetches have completed, successful or not (for tests).</summary>
    internal int Attempts => Volatile.Read(ref _attempts);

    /// <summary>Logs to <paramref name="logger"/> from now on (the server's logging exists only once the host is built).</summary>
    public void UseLogger(ILogger logger) => _logger = logger;

    /// <summary>Completes when at least <paramref name="count"/> fetches have completed (for tests).</summary>
    internal async Task WaitForAttemptsAsync(int count, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task attempted;
            lock (_lock)
            {
                if (_attempts >= count)
                {
                    return;
                }

                attempted = _attempted.Task;
            }

            await attempted.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// For a token naming <paramref name="kid"/>, which the current set does not hold: fetches again when the last fetch
    /// began at least <see cref="MinimumRefreshInterval"/> ago (or joins the fetch under way), and says whether the set
    /// now holds the <c>kid</c>.
    /// </summary>
    public async Task<bool> RefreshForUnknownKeyAsync(string kid)
    {
        Task<bool>? fetch;
        lock (_lock)
        {
            fetch = _inFlight;
            if (fetch is null && (_lastAttempt is not { } last || _time.GetUtcNow() - last >= MinimumRefreshInterval || _time.GetUtcNow() < last))
            {
                fetch = StartFetch("unknown kid");
            }
        }

        if (fetch is not null)
        {
            await fetch.ConfigureAwait(false);
        }

        return _current?.Holds(kid) == true;
    }

    /// <summary>
    /// Fetches now, and from then on on schedule until <see cref="Stop"/>: AutomaticRefreshInterval after a success,
    /// MinimumRefreshInterval after a failure (1 s, 2 s, 4 s, … up to it before the first success). Every fetch, also one
    /// an unknown <c>kid</c> forced, sets the next one.
    /// </summary>
    public void Start()
    {
        lock (_lock)
        {
            _timer ??= _time.CreateTimer(_ => OnTimer(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            _inFlight ??= StartFetch(_current is null ? "first fetch" : "scheduled refresh");
        }
    }

    /// <summary>Fetches no more on schedule (a fetch under way completes).</summary>
    public void Stop()
    {
        lock (_lock)
        {
            _stopped = true;
            _timer?.Dispose();
            _timer = null;
        }
    }

    public void Dispose()
    {
        Stop();
        _http.Dispose();
    }

    private void OnTimer()
    {
        lock (_lock)
        {
            if (!_stopped && _inFlight is null)
            {
                StartFetch(_current is null ? "retry" : "scheduled refresh");
            }
        }
    }


    /// <summary>Starts a fetch (under <see cref="_lock"/>, none being under way).</summary>
    private Task<bool> StartFetch(string reason)
    {
        _lastAttempt = _time.GetUtcNow();
        Task<bool> fetch = FetchAsync(reason);
        _inFlight = fetch;
        return fetch;
    }

    private async Task<bool> FetchAsync(string reason)
    {
        // Off the caller's stack: the lock is held by the caller.
        await Task.Yield();
        bool fetched = false;
        try
        {
            OpenIdConnectConfiguration configuration = await OpenIdConnectConfigurationRetriever.GetAsync(MetadataAddress.AbsoluteUri, _documents, CancellationToken.None).ConfigureAwait(false);
            if (!string.Equals(configuration.Issuer, Issuer, StringComparison.Ordinal))
            {
                throw new IssuerDiscoveryException($"the discovery document names the issuer '{Printable(configuration.Issuer)}', not '{Issuer}' ({Key}:Issuer); its keys are refused");
            }

            if (configuration.JsonWebKeySet is null)
            {
                throw new IssuerDiscoveryException("the discovery document names no jwks_uri");
            }

            IssuerKeySet keys = IssuerKeySet.From(configuration.JsonWebKeySet, _algorithms);
            if (keys.Count == 0)
            {
                throw new IssuerDiscoveryException($"its JWKS ({Printable(configuration.JwksUri)}) has no public signing key usable with {string.Join(", ", _algorithms)} (each needs a 'kid', and RSA for RS256/PS256 or P-256 EC for ES256)");
            }

            IssuerKeySet? previous = _current;
            _current = keys;
            fetched = true;
            if (previous is null || !previous.SameKeys(keys))
            {
                ServerLog.IssuerKeysFetched(_logger, Issuer, keys.Count, string.Join(", ", keys.KeyIds.Select(Printable)), reason);
            }
        }
#pragma warning disable CA1031 // Whatever goes wrong with one fetch (network, parsing, the retriever's own exceptions), the last good keys stay and the schedule goes on.
        catch (Exception e)
#pragma warning restore CA1031
        {
            string error = e is IssuerDiscoveryException ? e.Message : $"{e.GetType().Name}: {Printable(e.Message)}";
            if (_current is null)
            {
                ServerLog.IssuerKeysUnavailable(_logger, Issuer, MetadataAddress.AbsoluteUri, reason, error);
            }
            else
            {
                ServerLog.IssuerRefreshFailed(_logger, Issuer, MetadataAddress.AbsoluteUri, reason, error, _current.Count);
            }
        }
        finally
        {
            TaskCompletionSource attempted;
            lock (_lock)
            {
                // The next fetch on schedule, set before anyone learns that this one is over.
                TimeSpan next = fetched ? AutomaticRefreshInterval : _current is not null ? MinimumRefreshInterval : _retry;
                _retry = fetched || _current is not null ? FirstRetry : TimeSpan.FromTicks(Math.Min(_retry.Ticks * 2, MinimumRefreshInterval.Ticks));
                _timer?.Change(next, Timeout.InfiniteTimeSpan);
                _inFlight = null;
                _attempts++;
                attempted = _attempted;
                _attempted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            attempted.SetResult();
        }

        return fetched;
    }

    /// <summary>At most 200 characters, control characters replaced: text from the network goes into logs.</summary>
    internal static string Printable(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return string.Empty;
        }

        string cut = text.Length > 200 ? text[..200] + "…" : text;
        return string.Create(cut.Length, cut, (span, source) =>
        {
            for (int i = 0; i < source.Length; i++)
            {
                span[i] = char.IsControl(source[i]) ? '?' : source[i];
            }
        });
    }

    /// <summary>
    /// Asks only <c>https://</c> addresses, or <c>http://</c> ones to a loopback host (the discovery document's
    /// <c>jwks_uri</c> as much as the authority): the rule of the server's own listen addresses.
    /// </summary>
    private sealed class SecureDocumentRetriever(IDocumentRetriever inner) : IDocumentRetriever
    {
        public Task<string> GetDocumentAsync(string address, CancellationToken cancel)
        {
            if (!Uri.TryCreate(address, UriKind.Absolute, out Uri? uri) || !(uri.Scheme == Uri.UriSchemeHttps || (uri.Scheme == Uri.UriSchemeHttp && uri.IsLoopback)))
            {
                throw new IssuerDiscoveryException($"refusing to fetch '{Printable(address)}': only https:// (or http:// to a loopback host) is asked");
            }

            return inner.GetDocumentAsync(address, cancel);
        }
    }
}

/// <summary>Why a discovery fetch was refused (the message goes to the log as it is).</summary>
internal sealed class IssuerDiscoveryException(string message) : Exception(message);

/// <summary>
/// One issuer's usable public signing keys, each with the algorithms it may sign with, looked up by <c>kid</c> and by
/// reference (to check that a key the validation used is one of them).
/// </summary>
internal sealed class IssuerKeySet
{
    private readonly Dictionary<string, (JsonWebKey Key, string[] Algorithms)[]> _byKid;
    private readonly Dictionary<SecurityKey, string[]> _algorithms;

    /// <summary>The <c>kid</c>s of published signing keys this server may not use (another algorithm or key type).</summary>
    private readonly HashSet<string> _unusable;

    private IssuerKeySet(List<(JsonWebKey Key, string[] Algorithms)> keys, HashSet<string> unusable)
    {
        Keys = keys;
        _unusable = unusable;
        _byKid = keys.GroupBy(k => k.Key.Kid, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToArray(), StringComparer.Ordinal);
        _algorithms = new Dictionary<SecurityKey, string[]>(ReferenceEqualityComparer.Instance);
        foreach ((JsonWebKey key, string[] algorithms) in keys)
        {
            _algorithms[key] = algorithms;
        }
    }

    public IReadOnlyList<(JsonWebKey Key, string[] Algorithms)> Keys { get; }

    public int Count => Keys.Count;

    public IEnumerable<string> KeyIds => _byKid.Keys.Order(StringComparer.Ordinal);

    /// <summary>
    /// The usable keys of <paramref name="set"/>: public signing keys (<c>use</c> absent or <c>sig</c>) with a <c>kid</c>
    /// that fit ES256 (P-256), RS256 or PS256, each limited to its own <c>alg</c> (when given) and to
    /// <paramref name="allowed"/>. Any other key is ignored.
    /// </summary>
    public static IssuerKeySet From(JsonWebKeySet set, IReadOnlyList<string> allowed)
    {
        ArgumentNullException.ThrowIfNull(set);
        var keys = new List<(JsonWebKey, string[])>();
        var unusable = new HashSet<string>(StringComparer.Ordinal);
        foreach (JsonWebKey candidate in set.Keys)
        {
            if (string.IsNullOrEmpty(candidate.Kid) || (!string.IsNullOrEmpty(candidate.Use) && candidate.Use != "sig") || candidate.HasPrivateKey)
            {
                continue;
            }

            string[] algorithms = candidate.Kty switch
            {
                "RSA" => [SecurityAlgorithms.RsaSha256, SecurityAlgorithms.RsaSsaPssSha256],
                "EC" when candidate.Crv == "P-256" => [SecurityAlgorithms.EcdsaSha256],
                _ => [],
            };
            algorithms = algorithms.Where(a => (string.IsNullOrEmpty(candidate.Alg) || a == candidate.Alg) && allowed.Contains(a, StringComparer.Ordinal)).ToArray();
            if (algorithms.Length > 0)
            {
                keys.Add((candidate, algorithms));
            }
            else
            {
                unusable.Add(candidate.Kid);
            }
        }

        return new IssuerKeySet(keys, unusable);
    }

    public bool Holds(string kid) => _byKid.ContainsKey(kid);

    /// <summary>
    /// True when the issuer publishes a signing key <paramref name="kid"/> that this server may not use (its algorithm is
    /// not among the issuer's <c>Algorithms</c>, or its type is not supported), and no usable key of that <c>kid</c>.
    /// </summary>
    public bool PublishesUnusable(string kid) => _unusable.Contains(kid) && !_byKid.ContainsKey(kid);

    /// <summary>The keys named <paramref name="kid"/> that may sign with <paramref name="algorithm"/>.</summary>
    public IEnumerable<SecurityKey> Find(string kid, string? algorithm) =>
        _byKid.TryGetValue(kid, out (JsonWebKey Key, string[] Algorithms)[]? keys)
            ? keys.Where(k => algorithm is not null && k.Algorithms.Contains(algorithm, StringComparer.Ordinal)).Select(k => (SecurityKey)k.Key)
            : [];

    /// <summary>The algorithms <paramref name="key"/> may sign with, when it is one of this set's keys (by reference).</summary>
    public string[]? AlgorithmsOf(SecurityKey key) => _algorithms.GetValueOrDefault(key);

    /// <summary>True when both sets hold the same keys (the same JWK thumbprints under the same <c>kid</c>s).</summary>
    public bool SameKeys(IssuerKeySet other) =>
        Fingerprints().SequenceEqual(other.Fingerprints(), StringComparer.Ordinal);

    private IEnumerable<string> Fingerprints() =>
        Keys.Select(k => k.Key.Kid + ":" + Convert.ToBase64String(k.Key.ComputeJwkThumbprint())).Order(StringComparer.Ordinal);
}
