using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ModelSeal.Protocol;

namespace ModelSeal.Client;

/// <summary>
/// Hands over the signed-in user's current token from the app's own identity provider (MSAL, AppAuth, Firebase, …):
/// an access token for the key server, or an ID token, as the key server's trusted issuer is configured.
/// </summary>
/// <param name="forceRefresh">
/// True when the token handed over last was expired or was refused by the key server (401): get a new one from the
/// identity provider rather than from the SDK's cache (MSAL: <c>AcquireTokenSilent(…).WithForceRefresh(true)</c>).
/// </param>
/// <param name="cancellationToken">Cancels the call.</param>
/// <returns>The token (a compact JWT). Throw (for example MSAL's <c>MsalUiRequiredException</c>) when no user is signed
/// in or the user must sign in again: the exception reaches the caller of
/// <see cref="IModelKeySource.GetKeyAsync"/> unchanged.</returns>
public delegate ValueTask<string> SignInTokenCallback(bool forceRefresh, CancellationToken cancellationToken);

/// <summary>
/// The tokens of the app's own sign-in (docs/client.md "Signing in with the app's own identity provider"): each key
/// request asks the app's <see cref="SignInTokenCallback"/> for the user's current token; refreshing it is the app's
/// (its SDK's) job. No licence credential and no secret of any kind ships in the app on this path.
/// </summary>
/// <remarks>
/// <para>The token's <c>sub</c> and <c>exp</c> are read without verifying it (the key server verifies it; docs/protocol.md
/// section 2.4). <c>sub</c> is the subject the key is sealed to, so a key released to one user never opens for another
/// signed in later on the same device.</para>
/// <para>Calls of the callback per key request: one; two when the first token is expired (by <c>exp</c> and this source's
/// clock, within the refresh margin): then it asks once more with <c>forceRefresh</c> = true. A token still expired
/// after that is sent all the same and the key server decides (a device clock can be wrong); offline, its subject
/// still selects the user's lease. When the key server refuses a token (401), <see cref="RenewAsync"/> asks once with
/// <c>forceRefresh</c> = true and the key source retries the release once; a second 401 is
/// <see cref="ModelKeyUnavailableReason.Unauthorized"/>.</para>
/// <para>A value that is not a JWT with a <c>sub</c> and an <c>exp</c> is refused with
/// <see cref="ModelKeyUnavailableReason.Unauthorized"/> before anything is sent. The token is never logged nor put in an
/// exception message.</para>
/// </remarks>
public sealed class SignInTokenSource : ITokenSource
{
    private readonly SignInTokenCallback _callback;
    private readonly TimeProvider _time;
    private readonly TimeSpan _refreshMargin;
    private readonly ILogger _logger;
    private int _forceNext;
    private string? _subject;

    /// <summary>Creates a token source for the app's sign-in.</summary>
    /// <param name="callback">Where the app hands over the user's current token.</param>
    /// <param name="timeProvider">The clock that decides whether a token has expired (default: system).</param>
    /// <param name="logger">A logger (never given tokens).</param>
    public SignInTokenSource(SignInTokenCallback callback, TimeProvider? timeProvider = null, ILogger<SignInTokenSource>? logger = null)
        : this(callback, timeProvider ?? TimeProvider.System, TimeSpan.FromSeconds(60), logger)
    {
    }

    internal SignInTokenSource(SignInTokenCallback callback, TimeProvider timeProvider, TimeSpan refreshMargin, ILogger? logger)
    {
        ArgumentNullException.ThrowIfNull(callback);
        _callback = callback;
        _time = timeProvider;
        _refreshMargin = refreshMargin;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>
    /// The <c>sub</c> of the last token the app handed over, or null before the first. On sign-out, remove that user's
    /// leases with <see cref="ILeaseCache.RemoveSubjectAsync"/>.
    /// </summary>
    public string? Subject => Volatile.Read(ref _subject);

    /// <inheritdoc />
    /// <exception cref="ModelKeyUnavailableException">The callback returned something that is not a usable JWT.</exception>
    public async ValueTask<AccessToken> GetTokenAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _forceNext, 0) == 1)
        {
            return await RenewAsync(cancellationToken).ConfigureAwait(false);
        }

        AccessToken token = await AskAsync(forceRefresh: false, cancellationToken).ConfigureAwait(false);
        if (_time.GetUtcNow() < token.ExpiresAt - _refreshMargin)
        {
            return token;
        }

        ClientLog.SignInTokenExpiring(_logger, token.ExpiresAt);
        return await RenewAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Asks the callback once with <c>forceRefresh</c> = true.</summary>
    /// <inheritdoc />
    public async ValueTask<AccessToken> RenewAsync(CancellationToken cancellationToken = default)
    {
        AccessToken token = await AskAsync(forceRefresh: true, cancellationToken).ConfigureAwait(false);
        if (_time.GetUtcNow() >= token.ExpiresAt)
        {
            ClientLog.SignInTokenStillExpired(_logger, token.ExpiresAt);
        }

        return token;
    }

    /// <summary>Makes the next <see cref="GetTokenAsync"/> ask the callback with <c>forceRefresh</c> = true.</summary>
    public void Invalidate() => Volatile.Write(ref _forceNext, 1);

    private async ValueTask<AccessToken> AskAsync(bool forceRefresh, CancellationToken cancellationToken)
    {
        string? jwt = await _callback(forceRefresh, cancellationToken).ConfigureAwait(false);
        AccessToken token = Parse(jwt);
        Volatile.Write(ref _subject, token.Subject);
        ClientLog.SignInTokenReceived(_logger, forceRefresh, token.ExpiresAt);
        return token;
    }

    /// <summary>The token with its <c>sub</c> and <c>exp</c>; a refusal that names what is wrong, never the token.</summary>
    internal static AccessToken Parse(string? jwt)
    {
        const string Hand = "The app's sign-in callback (SignInTokenCallback)";
        if (string.IsNullOrWhiteSpace(jwt))
        {
            throw Refused($"{Hand} returned no token. Sign the user in first; when nobody is signed in, throw from the callback (its exception reaches the caller unchanged).");
        }

        jwt = jwt.Trim();
        if (jwt.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            throw Refused($"{Hand} returned an Authorization header value (\"Bearer …\"). Return the token itself.");
        }

        if (TokenClaims.Read(jwt) is not { } claims)
        {
            throw Refused($"{Hand} returned a value that is not a JWT (three base64url parts, the second a JSON object of claims); it has {jwt.Split('.').Length} part(s) and {jwt.Length} characters. " +
                "Hand over the access token (RFC 9068, for the key server's audience) or the ID token, whichever the key server trusts for this issuer. " +
                "An opaque access token cannot be used: ask the identity provider for a JWT access token for the key server's API (its audience or resource indicator).");
        }

        if (claims.Subject is not { } subject)
        {
            throw Refused($"{Hand} returned a JWT without a 'sub' claim (a non-empty string). The key server needs the user's subject; hand over the user's access or ID token, not an app-only (client credentials) token.");
        }

        if (claims.ExpiresAt is not { } expiresAt)
        {
            throw Refused($"{Hand} returned a JWT without a numeric 'exp' claim. The key server accepts only tokens that expire; hand over the token your identity provider issued for the user.");
        }

        return new AccessToken(jwt, subject, expiresAt);
    }

    private static ModelKeyUnavailableException Refused(string message) => new(ModelKeyUnavailableReason.Unauthorized, message);
}
