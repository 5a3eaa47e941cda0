using Microsoft.Extensions.DependencyInjection;

namespace ModelSeal.Client;

/// <summary>
/// Configuration of the ModelSeal client (bound from configuration by
/// <see cref="ModelSealServiceCollectionExtensions.AddModelSeal(IServiceCollection, Microsoft.Extensions.Configuration.IConfiguration)"/>
/// and validated when the host starts by <see cref="ModelSealClientOptionsValidator"/>; no reflection, so it is trimming
/// and NativeAOT safe).
/// </summary>
public sealed class ModelSealClientOptions
{
    /// <summary>The key server's base address, for example <c>https://keys.example.com/</c>. Required.</summary>
    public string? ServerUrl { get; set; }

    /// <summary>
    /// Allows plain <c>http://</c> to a host that is not a loopback address (for example behind a TLS-terminating proxy on
    /// the same host segment). Off by default: the licence credential, tokens and keys would cross the network in clear.
    /// <c>https://</c> and <c>http://</c> to loopback (<c>localhost</c>, 127.0.0.0/8, <c>[::1]</c>) need no opt-out.
    /// </summary>
    public bool AllowInsecureHttp { get; set; }

    /// <summary>
    /// The <c>kid</c> of the key server's answer key (logged by the server at start; the JWKS key with
    /// <c>"purpose": "answer"</c>). Every key answer and refusal must carry its signature over this client's request.
    /// Without it the key is learned from the server's JWKS at first contact — only over HTTPS or to loopback — and then
    /// kept (in <see cref="LeaseCacheDirectory"/>, when set). Pin it in shipped apps.
    /// </summary>
    public string? AnswerKeyId { get; set; }

    /// <summary>The licence id (<c>lic_…</c>) for the built-in licence-credential token source.</summary>
    public string? LicenceId { get; set; }

    /// <summary>An owner-only file holding the licence credential (never put the credential itself in configuration).</summary>
    public string? CredentialFile { get; set; }

    /// <summary>
    /// Where the device key is kept (owner-only; created at first use). Without it the device key lives only in
    /// memory, so every process start is a new device and uses up one of the licence's device slots.
    /// </summary>
    public string? DeviceKeyFile { get; set; }

    /// <summary>A directory (owner-only) for offline leases. Without it leases are kept in memory only.</summary>
    public string? LeaseCacheDirectory { get; set; }

    /// <summary>Timeout of one HTTP attempt. Default 2 s.</summary>
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Timeout of one call including all retries. Default 8 s.</summary>
    public TimeSpan TotalTimeout { get; set; } = TimeSpan.FromSeconds(8);

    /// <summary>Retries after the first attempt (transport errors, 5xx, 408 and 429 only). Default 3.</summary>
    public int MaxRetryAttempts { get; set; } = 3;

    /// <summary>Base delay of the exponential backoff (with jitter). Default 200 ms.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>The longest wait between attempts, also the cap on a server's <c>Retry-After</c>. Default 2 s.</summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long the circuit stays open after it breaks. Default 5 s.</summary>
    public TimeSpan CircuitBreakDuration { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>A cached token is renewed this long before it expires. Default 60 s.</summary>
    public TimeSpan TokenRefreshMargin { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The circuit breaker's sampling window: at least twice the attempt timeout, and at least 30 s.</summary>
    internal TimeSpan SamplingDuration => TimeSpan.FromTicks(Math.Max(2 * AttemptTimeout.Ticks, TimeSpan.FromSeconds(30).Ticks));

    /// <summary>The server address as an absolute http(s) URI ending in a slash, or null when invalid.</summary>
    internal Uri? ServerUri =>
        Uri.TryCreate(ServerUrl, UriKind.Absolute, out Uri? uri) && (uri.Scheme == Uri.UriSchemeHttps || uri.Scheme == Uri.UriSchemeHttp)
            ? (uri.AbsoluteUri.EndsWith('/') ? uri : new Uri(uri.AbsoluteUri + "/"))
            : null;
}
