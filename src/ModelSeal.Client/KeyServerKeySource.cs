using Microsoft.Extensions.DependencyInjection;
using System.Buffers.Text;
using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ModelSeal.Hpke;
using ModelSeal.Protocol;

namespace ModelSeal.Client;

/// <summary>
/// Gets model keys from the key server (<c>POST /v1/keys/release</c>, docs/protocol.md section 2), sealed with HPKE to
/// this device's key, and keeps each answer as an offline lease.
/// </summary>
/// <remarks>
/// Policy: the server is always asked first, with a fresh nonce, and its answer counts only when signed by the
/// server's answer key for this request (docs/protocol.md section 2.2). When it cannot be reached (transport errors,
/// timeouts, 5xx/408/429 after the retries), or answers with anything that is not a signed answer (a captive portal's
/// page, an unsigned or forged refusal, a forged release), a cached lease is used while the clock is before its
/// expiry; after it, <see cref="ModelKeyUnavailableReason.LeaseExpired"/>. Only a signed refusal (403, 404, 410) is
/// definitive: it removes the lease (unless that lease was released to another subject than the refused token's), so a
/// revocation or a blocked user takes effect at the next online contact.
/// <para>
/// With an <see cref="IDeviceAttestation"/>, the first release in the process first asks the server for a challenge
/// (<c>POST /v1/attestation/challenges</c>), has the platform attest over it, and sends the evidence with the release;
/// once such a release succeeds, no evidence is sent again by this instance. One attestation runs at a time: a release
/// that starts while another is attesting waits for it, and sends none when that one succeeded.
/// </para>
/// </remarks>
public sealed class KeyServerKeySource : IModelKeySource, IDisposable
{
    private readonly Func<HttpClient> _client;
    private readonly ITokenSource _tokens;
    private readonly IDeviceKeyStore _deviceKeys;
    private readonly ILeaseCache _leases;
    private readonly AnswerKeys _answerKeys;
    private readonly bool _ownsAnswerKeys;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly IDeviceAttestation? _attestation;
    private readonly SemaphoreSlim _attesting = new(1, 1);

    /// <summary>The shortest challenge accepted from the server (it issues 32 random bytes).</summary>
    private const int MinimumChallengeSize = 16;
    private volatile bool _attested;

    /// <summary>Creates a key source.</summary>
    /// <param name="httpClient">A client whose <see cref="HttpClient.BaseAddress"/> is the key server (use
    /// <see cref="ModelSealServiceCollectionExtensions.AddModelSeal(IServiceCollection, Action{ModelSealClientOptions})"/>
    /// for one with retries, timeouts and a circuit breaker).</param>
    /// <param name="tokens">Where bearer tokens come from.</param>
    /// <param name="deviceKeys">The device key store.</param>
    /// <param name="leases">The offline lease cache.</param>
    /// <param name="timeProvider">The clock for lease expiry (default: system).</param>
    /// <param name="logger">A logger (never given secrets).</param>
    /// <param name="answerKeyId">The server's answer key (<see cref="ModelSealClientOptions.AnswerKeyId"/>; null: learned from its JWKS).</param>
    /// <param name="attestation">The platform's device attestation, for servers whose grants have an attestation policy (null: none is sent).</param>
    public KeyServerKeySource(HttpClient httpClient, ITokenSource tokens, IDeviceKeyStore deviceKeys, ILeaseCache leases, TimeProvider? timeProvider = null, ILogger<KeyServerKeySource>? logger = null, string? answerKeyId = null, IDeviceAttestation? attestation = null)
        : this(Checked(httpClient), tokens, deviceKeys, leases, new AnswerKeys(Checked(httpClient), answerKeyId, (leases as FileLeaseCache)?.Directory), timeProvider, logger, attestation)
    {
        _ownsAnswerKeys = true;
    }

    internal KeyServerKeySource(Func<HttpClient> client, ITokenSource tokens, IDeviceKeyStore deviceKeys, ILeaseCache leases, AnswerKeys answerKeys, TimeProvider? timeProvider, ILogger? logger, IDeviceAttestation? attestation = null)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(deviceKeys);
        ArgumentNullException.ThrowIfNull(leases);
        _client = client;
        _tokens = tokens;
        _deviceKeys = deviceKeys;
        _leases = leases;
        _answerKeys = answerKeys;
        _time = timeProvider ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        _attestation = attestation;
    }

    /// <summary>Called when a release waits for another one's attestation to finish (a test seam).</summary>
    internal Action? WaitingForAttestation { get; set; }

    /// <inheritdoc />
    /// <exception cref="ModelKeyUnavailableException">No key: <see cref="ModelKeyUnavailableException.Reason"/> says why.</exception>
    public async ValueTask<ModelKey> GetKeyAsync(SealedModelHeader header, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(header);
        if (_attestation is null || _attested)
        {
            return await GetKeyAsync(header, attest: false, cancellationToken).ConfigureAwait(false);
        }

        // One attestation at a time: the others wait, and need none once it succeeded.
        if (_attesting.CurrentCount == 0)
        {
            WaitingForAttestation?.Invoke();
        }

        await _attesting.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await GetKeyAsync(header, attest: !_attested, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _attesting.Release();
        }
    }

    private async Task<ModelKey> GetKeyAsync(SealedModelHeader header, bool attest, CancellationToken cancellationToken)
    {
        // Attesting, the device key is got after the attestation: a platform store may create it with the challenge.
        IHpkeKeyAgreement? device = attest ? null : await _deviceKeys.GetOrCreateAsync(cancellationToken).ConfigureAwait(false);
        var subject = new StrongBox<string?>(); // the subject of the token sent last, once there is one
        try
        {
            AccessToken token = await _tokens.GetTokenAsync(cancellationToken).ConfigureAwait(false);
            subject.Value = token.Subject;
            AttestationEvidence? evidence = null;
            bool renewed = false;
            if (device is null)
            {
                (token, evidence, renewed) = await AttestAsync(token, subject, cancellationToken).ConfigureAwait(false);
                device = await _deviceKeys.GetOrCreateAsync(cancellationToken).ConfigureAwait(false);
            }

            ModelKey key = await ReleaseOnlineAsync(header, device, token, evidence, renewed, subject, cancellationToken).ConfigureAwait(false);
            if (evidence is not null)
            {
                _attested = true;
            }

            return key;
        }
        catch (ModelKeyUnavailableException e) when (e.IsDefinitiveRefusal)
        {
            if (e.Reason == ModelKeyUnavailableReason.AttestationRejected)
            {
                // The server holds no (valid) attestation of this key for the grant — it gained a policy, or
                // re-verification rejected the key: the next release attests again.
                _attested = false;
            }

            await RemoveRefusedLeaseAsync(header, subject.Value).ConfigureAwait(false);
            ClientLog.Refused(_logger, header.ModelId, header.ModelVersion, header.KeyId, e.Reason);
            throw;
        }
        catch (ModelKeyUnavailableException e) when (e.Reason == ModelKeyUnavailableReason.ServerUnavailable || (e.StatusCode is not null && !e.IsSignedRefusal))
        {
            // Unreachable, or an answer that is not provably the server's: the lease (if any) decides.
            device ??= await _deviceKeys.GetOrCreateAsync(cancellationToken).ConfigureAwait(false);
            return await FromLeaseAsync(header, device, subject.Value, e, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc cref="IDisposable.Dispose"/>
    public void Dispose()
    {
        _attesting.Dispose();
        if (_ownsAnswerKeys)
        {
            _answerKeys.Dispose();
        }
    }

    /// <summary>
    /// Gets a challenge (a 401 renews the token once, as for a release) and the platform's evidence over it. A failed
    /// challenge request is the server being unavailable (the lease decides); a failed attestation is
    /// <see cref="ModelKeyUnavailableReason.AttestationFailed"/>.
    /// </summary>
    private async Task<(AccessToken Token, AttestationEvidence Evidence, bool Renewed)> AttestAsync(AccessToken token, StrongBox<string?> subject, CancellationToken cancellationToken)
    {
        ChallengeResponse answer;
        bool renewed = false;
        try
        {
            try
            {
                answer = await AskChallengeAsync(token, cancellationToken).ConfigureAwait(false);
            }
            catch (ModelKeyUnavailableException e) when (e.StatusCode == 401)
            {
                token = await _tokens.RenewAsync(cancellationToken).ConfigureAwait(false);
                subject.Value = token.Subject;
                renewed = true;
                answer = await AskChallengeAsync(token, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (ModelKeyUnavailableException e) when (e.Reason != ModelKeyUnavailableReason.ServerUnavailable && e.StatusCode != 401)
        {
            // Not a signed answer about a key: as for any transport failure, the lease (if any) decides.
            throw new ModelKeyUnavailableException(
                ModelKeyUnavailableReason.ServerUnavailable,
                $"The key server did not issue an attestation challenge ({e.StatusCode}{(e.ProblemCode is null ? string.Empty : $" {e.ProblemCode}")}; a key server without attestation support answers 404: upgrade it, or remove the app's IDeviceAttestation). {e.Message}",
                e, e.StatusCode, e.ProblemCode, e.Attempts);
        }

        byte[] challenge;
        try
        {
            challenge = Base64Url.DecodeFromChars(answer.Challenge);
        }
        catch (FormatException)
        {
            challenge = [];
        }

        if (challenge.Length < MinimumChallengeSize)
        {
            throw new ModelKeyUnavailableException(ModelKeyUnavailableReason.ServerUnavailable, $"The key server's attestation challenge is not base64url of at least {MinimumChallengeSize} bytes (a proxy or captive portal answered in its place?); it was ignored.");
        }

        DeviceAttestationEvidence? evidence;
        try
        {
            evidence = await _attestation!.AttestAsync(challenge, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception e) when (e is not ModelKeyUnavailableException)
        {
            throw AttestationFailed($"it threw {e.GetType().Name}: {e.Message}", e);
        }

        return (token, evidence?.ToWire(challenge) ?? throw AttestationFailed("it returned no evidence", null), renewed);
    }

    private Task<ChallengeResponse> AskChallengeAsync(AccessToken token, CancellationToken cancellationToken) =>
        KeyServerHttp.PostEmptyAsync(_client(), "v1/attestation/challenges", ProtocolJson.Default.ChallengeResponse, token.Token, "attestation challenge", cancellationToken);

    private static ModelKeyUnavailableException AttestationFailed(string what, Exception? inner) => new(
        ModelKeyUnavailableReason.AttestationFailed,
        $"The device could not be attested: the app's IDeviceAttestation {what}. The key server asks for attestation evidence (the licence or entitlement rule has an attestation policy); check that the device supports it (Android: a hardware-backed Keystore with key attestation; iOS: DCAppAttestService.isSupported and the App Attest entitlement) and see docs/client.md \"Attestation\". Nothing was sent; the offline lease is kept.",
        inner);

    /// <summary>The release; a 401 renews the token and asks once more, unless the challenge request renewed it already.</summary>
    private async Task<ModelKey> ReleaseOnlineAsync(SealedModelHeader header, IHpkeKeyAgreement device, AccessToken token, AttestationEvidence? evidence, bool renewed, StrongBox<string?> subject, CancellationToken cancellationToken)
    {
        byte[] nonce = SignedAnswers.NewNonce();
        ReleaseResponse answer;
        try
        {
            answer = await AskAsync(header, device, token, nonce, evidence, cancellationToken).ConfigureAwait(false);
        }
        catch (ModelKeyUnavailableException e) when (e.StatusCode == 401 && !renewed)
        {
            // A cached token can go stale (for example when the server's signing key was replaced, or the app's sign-in
            // token was revoked): get a new one and ask once more. A second 401 is a real refusal.
            token = await _tokens.RenewAsync(cancellationToken).ConfigureAwait(false);
            subject.Value = token.Subject;
            nonce = SignedAnswers.NewNonce();
            answer = await AskAsync(header, device, token, nonce, evidence, cancellationToken).ConfigureAwait(false);
        }

        // The answer key is needed only once there is an answer to check (fetched at most once, then kept).
        AnswerKey answerKey = await _answerKeys.GetAsync(cancellationToken).ConfigureAwait(false);

        if (answer.ModelId != header.ModelId || answer.Version != header.ModelVersion)
        {
            throw Invalid($"The key server released a key for model '{answer.ModelId}' version '{answer.Version}', not the requested '{header.ModelId}' version '{header.ModelVersion}'.");
        }

        if (answer.KeyId != header.KeyId)
        {
            throw Invalid($"The key server's key for model '{header.ModelId}' version '{header.ModelVersion}' is '{answer.KeyId}', but the sealed file needs key '{header.KeyId}': the file was sealed with another key. Reseal the model or ship the matching file.");
        }

        if (answer.Suite != KeyRelease.Suite || !Rfc3339.TryParse(answer.LeaseExpiresAt, out DateTimeOffset leaseExpiresAt))
        {
            throw Invalid("The key server's release answer has an unknown suite or an invalid leaseExpiresAt.");
        }

        if (!SignedRelease(answer, answerKey, nonce, device, token.Subject, leaseExpiresAt))
        {
            // Checked before anything is stored: a forged answer must not replace the lease.
            throw new ModelKeyUnavailableException(
                ModelKeyUnavailableReason.ServerUnavailable,
                $"The key server's answer for model '{header.ModelId}' version '{header.ModelVersion}' is not signed by its answer key '{answerKey.KeyId}' for this request (a proxy, captive portal or attacker answered in its place); it was ignored.");
        }

        var lease = new ModelLease(header.ModelId, header.ModelVersion, header.KeyId, token.Subject, answer.Enc, answer.SealedKey, leaseExpiresAt);
        ModelKey key = Open(lease, device) ?? throw Invalid("The key released by the server does not open with this device's key (wrong device key, subject or lease binding).");
        if (_logger.IsEnabled(LogLevel.Information))
        {
            ClientLog.Released(_logger, header.ModelId, header.ModelVersion, header.KeyId, device.PublicKey.Thumbprint, leaseExpiresAt);
        }

        try
        {
            await _leases.StoreAsync(lease, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            ClientLog.LeaseNotStored(_logger, header.KeyId, e.GetType().Name);
        }

        return key;
    }

    /// <summary>One release request; a refusal's signature is checked against this request before it is thrown.</summary>
    private async Task<ReleaseResponse> AskAsync(SealedModelHeader header, IHpkeKeyAgreement device, AccessToken token, byte[] nonce, AttestationEvidence? evidence, CancellationToken cancellationToken)
    {
        var body = new ReleaseRequest(header.ModelId, header.ModelVersion, Base64Url.EncodeToString(device.PublicKey.Encoded.Span), Base64Url.EncodeToString(nonce), SignedAnswers.ProtocolVersion, evidence);
        try
        {
            return await KeyServerHttp.PostAsync(
                _client(), "v1/keys/release", body, ProtocolJson.Default.ReleaseRequest, ProtocolJson.Default.ReleaseResponse, token.Token, "key release", cancellationToken).ConfigureAwait(false);
        }
        catch (ModelKeyUnavailableException e) when (e.Problem is { Signature: not null } problem && e.ProblemCode is { } code)
        {
            AnswerKey answerKey = await _answerKeys.GetAsync(cancellationToken).ConfigureAwait(false);
            byte[] statement = SignedAnswers.Refused(nonce, device.PublicKey.Encoded.Span, header.ModelId, header.ModelVersion, token.Subject, code);
            e.IsSignedRefusal = problem.Kid == answerKey.KeyId && SignedAnswers.Verify(answerKey.PublicKey, statement, problem.Signature);
            throw;
        }
    }

    /// <summary>True when <paramref name="answer"/> is the server's signed answer to this request.</summary>
    private static bool SignedRelease(ReleaseResponse answer, AnswerKey answerKey, byte[] nonce, IHpkeKeyAgreement device, string subject, DateTimeOffset leaseExpiresAt)
    {
        if (answer.Kid != answerKey.KeyId || !Base64Url.IsValid(answer.Enc) || !Base64Url.IsValid(answer.SealedKey))
        {
            return false;
        }

        byte[] statement = SignedAnswers.Released(
            nonce, device.PublicKey.Encoded.Span, answer.ModelId, answer.Version, answer.KeyId, subject, leaseExpiresAt,
            Base64Url.DecodeFromChars(answer.Enc), Base64Url.DecodeFromChars(answer.SealedKey));
        return SignedAnswers.Verify(answerKey.PublicKey, statement, answer.Signature);
    }

    /// <summary>
    /// The cached lease's key, when the lease has not expired and — once a token was obtained for this request — was
    /// released to that token's subject: a lease of the user signed in before is not used for the user signed in now.
    /// </summary>
    private async Task<ModelKey> FromLeaseAsync(SealedModelHeader header, IHpkeKeyAgreement device, string? subject, ModelKeyUnavailableException online, CancellationToken cancellationToken)
    {
        ModelLease? lease = await _leases.GetAsync(header.ModelId, header.ModelVersion, header.KeyId, cancellationToken).ConfigureAwait(false);
        if (lease is null)
        {
            ClientLog.NoLease(_logger, header.ModelId, header.ModelVersion, header.KeyId, online.Reason);
            throw online;
        }

        if (subject is not null && !string.Equals(lease.Subject, subject, StringComparison.Ordinal))
        {
            // Kept: it is the other user's, and useless to this one (it opens only with its own subject, section 2.1).
            ClientLog.LeaseOfAnotherSubject(_logger, header.ModelId, header.ModelVersion, header.KeyId);
            throw online;
        }

        DateTimeOffset now = _time.GetUtcNow();
        if (now >= lease.LeaseExpiresAt)
        {
            ClientLog.NoLease(_logger, header.ModelId, header.ModelVersion, header.KeyId, ModelKeyUnavailableReason.LeaseExpired);
            throw new ModelKeyUnavailableException(
                ModelKeyUnavailableReason.LeaseExpired,
                $"The key server is unreachable and the offline lease for model '{header.ModelId}' version '{header.ModelVersion}' expired at {lease.LeaseExpiresAt:u}. Connect to the network so the key can be released again. ({online.Message})",
                online, online.StatusCode, online.ProblemCode, online.Attempts);
        }

        ModelKey? key = Open(lease, device);
        if (key is null)
        {
            await RemoveLeaseAsync(header).ConfigureAwait(false);
            ClientLog.LeaseUnusable(_logger, header.KeyId);
            throw online;
        }

        ClientLog.UsingLease(_logger, header.ModelId, header.ModelVersion, header.KeyId, lease.LeaseExpiresAt);
        return key;
    }

    /// <summary>
    /// After a signed refusal for the token's <paramref name="subject"/>: removes the lease, unless it was released to
    /// another subject (another user signed in on this device before): the refusal says nothing about that user, whose
    /// lease opens only for them anyway.
    /// </summary>
    private async Task RemoveRefusedLeaseAsync(SealedModelHeader header, string? subject)
    {
        if (subject is not null)
        {
            ModelLease? lease;
            try
            {
                lease = await _leases.GetAsync(header.ModelId, header.ModelVersion, header.KeyId, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                lease = null;
            }

            if (lease is not null && !string.Equals(lease.Subject, subject, StringComparison.Ordinal))
            {
                ClientLog.LeaseOfAnotherSubject(_logger, header.ModelId, header.ModelVersion, header.KeyId);
                return;
            }
        }

        await RemoveLeaseAsync(header).ConfigureAwait(false);
    }

    /// <summary>Removes a lease; a failure to remove is logged, never allowed to hide the refusal that caused it.</summary>
    private async Task RemoveLeaseAsync(SealedModelHeader header)
    {
        try
        {
            await _leases.RemoveAsync(header.ModelId, header.ModelVersion, header.KeyId, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            ClientLog.LeaseNotRemoved(_logger, header.KeyId, e.GetType().Name);
        }
    }

    private static ModelKey? Open(ModelLease lease, IHpkeKeyAgreement device)
    {
        try
        {
            byte[] enc = Base64Url.DecodeFromChars(lease.Enc);
            byte[] sealedKey = Base64Url.DecodeFromChars(lease.SealedKey);
            return KeyRelease.Open(device, enc, sealedKey, lease.ModelId, lease.Version, lease.KeyId, lease.Subject, lease.LeaseExpiresAt);
        }
        catch (Exception e) when (e is HpkeOpenException or FormatException or ModelKeyException or ArgumentException or System.Security.Cryptography.CryptographicException)
        {
            return null;
        }
    }

    private static ModelKeyUnavailableException Invalid(string message) =>
        new(ModelKeyUnavailableReason.InvalidResponse, message);

    private static Func<HttpClient> Checked(HttpClient httpClient)
    {
        ArgumentNullException.ThrowIfNull(httpClient);
        return () => httpClient;
    }
}
