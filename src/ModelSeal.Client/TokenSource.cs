using System.Buffers.Text;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ModelSeal.Protocol;

namespace ModelSeal.Client;

/// <summary>A bearer token for the key server. <see cref="ToString"/> never shows the token.</summary>
/// <param name="Token">The JWT.</param>
/// <param name="Subject">The token's <c>sub</c> claim: part of the HPKE binding of released keys.</param>
/// <param name="ExpiresAt">When the token expires.</param>
public sealed record AccessToken(string Token, string Subject, DateTimeOffset ExpiresAt)
{
    /// <inheritdoc />
    public override string ToString() => $"AccessToken {{ Subject = {Subject}, ExpiresAt = {ExpiresAt:O} }}";

    /// <summary>Reads the <c>sub</c> claim of a JWT (without verifying it: the server does), or null.</summary>
    public static string? ReadSubject(string jwt)
    {
        ArgumentNullException.ThrowIfNull(jwt);
        return TokenClaims.SubjectOf(jwt);
    }
}

/// <summary>Supplies bearer tokens for key release.</summary>
public interface ITokenSource
{
    /// <summary>Returns a token valid for a while (cached or new).</summary>
    /// <exception cref="ModelKeyUnavailableException">No token could be obtained.</exception>
    ValueTask<AccessToken> GetTokenAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Forgets a cached token after the server refused it (401), so the next <see cref="GetTokenAsync"/> obtains a new
    /// one. The default does nothing.
    /// </summary>
    void Invalidate()
    {
    }

    /// <summary>
    /// Obtains a new token after the key server refused the last one (401). The key source calls this at most once per
    /// key request and then retries the request once. The default calls <see cref="Invalidate"/> and then
    /// <see cref="GetTokenAsync"/>.
    /// </summary>
    /// <exception cref="ModelKeyUnavailableException">No token could be obtained.</exception>
    ValueTask<AccessToken> RenewAsync(CancellationToken cancellationToken = default)
    {
        Invalidate();
        return GetTokenAsync(cancellationToken);
    }
}

/// <summary>
/// Exchanges a licence credential (read from an owner-only file at each exchange) for the server's own token
/// (<c>POST /v1/token</c>, grant <c>licence</c>) and caches it until shortly before it expires.
/// </summary>
public sealed class LicenceCredentialTokenSource : ITokenSource, IDisposable
{
    private readonly Func<HttpClient> _client;
    private readonly string _licenceId;
    private readonly string _credentialFile;
    private readonly TimeProvider _time;
    private readonly TimeSpan _refreshMargin;
    private readonly ILogger _logger;
    private readonly AnswerKeys _answerKeys;
    private readonly bool _ownsAnswerKeys;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private AccessToken? _cached;

    /// <summary>Creates a token source.</summary>
    /// <param name="httpClient">A client whose <see cref="HttpClient.BaseAddress"/> is the key server.</param>
    /// <param name="licenceId">The licence id (<c>lic_…</c>).</param>
    /// <param name="credentialFile">An owner-only file holding the licence credential.</param>
    /// <param name="timeProvider">The clock (default: system).</param>
    /// <param name="logger">A logger (never given secrets).</param>
    /// <param name="answerKeyId">The server's answer key (<see cref="ModelSealClientOptions.AnswerKeyId"/>; null: learned from its JWKS).</param>
    public LicenceCredentialTokenSource(HttpClient httpClient, string licenceId, string credentialFile, TimeProvider? timeProvider = null, ILogger<LicenceCredentialTokenSource>? logger = null, string? answerKeyId = null)
        : this(Checked(httpClient), licenceId, credentialFile, timeProvider ?? TimeProvider.System, TimeSpan.FromSeconds(60), new AnswerKeys(Checked(httpClient), answerKeyId, null), logger)
    {
        _ownsAnswerKeys = true;
    }

    internal LicenceCredentialTokenSource(Func<HttpClient> client, string licenceId, string credentialFile, TimeProvider timeProvider, TimeSpan refreshMargin, AnswerKeys answerKeys, ILogger? logger)
    {
        ArgumentException.ThrowIfNullOrEmpty(licenceId);
        ArgumentException.ThrowIfNullOrEmpty(credentialFile);
        _client = client;
        _licenceId = licenceId;
        _credentialFile = credentialFile;
        _time = timeProvider;
        _refreshMargin = refreshMargin;
        _answerKeys = answerKeys;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <inheritdoc />
    public async ValueTask<AccessToken> GetTokenAsync(CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _cached) is { } token && _time.GetUtcNow() < token.ExpiresAt - _refreshMargin)
        {
            return token;
        }

        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_cached is { } again && _time.GetUtcNow() < again.ExpiresAt - _refreshMargin)
            {
                return again;
            }

            string credential = OwnerOnly.ReadSmallText(_credentialFile, "licence credential file", 1024).Trim();
            DateTimeOffset now = _time.GetUtcNow();
            byte[] nonce = SignedAnswers.NewNonce();
            TokenResponse answer;
            try
            {
                answer = await KeyServerHttp.PostAsync(
                    _client(), "v1/token", new TokenRequest("licence", _licenceId, credential, Base64Url.EncodeToString(nonce)), ProtocolJson.Default.TokenRequest, ProtocolJson.Default.TokenResponse, null, "token", cancellationToken).ConfigureAwait(false);
            }
            catch (ModelKeyUnavailableException e) when (e.Problem?.Signature is not null && e.ProblemCode is not null)
            {
                // A licence's standing, signed for this nonce: the refusal may remove leases (ModelKeyUnavailableException.IsDefinitiveRefusal).
                AnswerKey key = await _answerKeys.GetAsync(cancellationToken).ConfigureAwait(false);
                e.IsSignedRefusal = e.Problem.Kid == key.KeyId
                    && SignedAnswers.Verify(key.PublicKey, SignedAnswers.TokenRefusedStatement(nonce, _licenceId, e.ProblemCode), e.Problem.Signature);
                throw;
            }

            if (string.IsNullOrEmpty(answer.AccessToken) || answer.ExpiresIn <= 0 || AccessToken.ReadSubject(answer.AccessToken) is not { } subject)
            {
                throw new ModelKeyUnavailableException(ModelKeyUnavailableReason.InvalidResponse, "The key server's token answer has no usable token (missing token, subject or lifetime). Check that ServerUrl points at a ModelSeal key server.");
            }

            _cached = new AccessToken(answer.AccessToken, subject, now.AddSeconds(answer.ExpiresIn));
            ClientLog.TokenObtained(_logger, _licenceId, _cached.ExpiresAt);
            return _cached;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <inheritdoc />
    public void Invalidate() => Volatile.Write(ref _cached, null);

    /// <inheritdoc />
    public void Dispose()
    {
        _lock.Dispose();
        if (_ownsAnswerKeys)
        {
            _answerKeys.Dispose();
        }
    }

    private static Func<HttpClient> Checked(HttpClient httpClient)
    {
        ArgumentNullException.ThrowIfNull(httpClient);
        return () => httpClient;
    }
}
