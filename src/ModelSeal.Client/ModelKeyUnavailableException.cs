namespace ModelSeal.Client;

/// <summary>Why a model key could not be obtained from the key server or an offline lease.</summary>
public enum ModelKeyUnavailableReason
{
    /// <summary>The server answered with something the client cannot use (malformed, or a key that does not open).</summary>
    InvalidResponse = 0,

    /// <summary>The licence credential or token was refused (401), or the token lacks the needed scope.</summary>
    Unauthorized,

    /// <summary>The licence was revoked, or no licence exists for the token.</summary>
    LicenceRevoked,

    /// <summary>The licence has expired (or is not valid yet).</summary>
    LicenceExpired,

    /// <summary>The licence does not cover this model.</summary>
    NotLicensed,

    /// <summary>The model or the model version does not exist on the server.</summary>
    ModelNotFound,

    /// <summary>The model version is disabled (403) or its key was destroyed (410).</summary>
    VersionDisabled,

    /// <summary>The licence has reached its device limit.</summary>
    DeviceLimit,

    /// <summary>The server could not be reached or kept failing after the retries, and no offline lease was cached.</summary>
    ServerUnavailable,

    /// <summary>The server could not be reached and the cached offline lease has expired.</summary>
    LeaseExpired,

    /// <summary>
    /// The signed-in user (a trusted identity provider's token) has no licence and no entitlement rule of the key server
    /// covers them (<c>403 no-entitlement</c>): the user needs access granted by the publisher, or another account.
    /// </summary>
    NoEntitlement,

    /// <summary>
    /// An administrator blocked the signed-in user on the key server (<c>403 user-blocked</c>): no key is released to any
    /// of the user's devices until the user is unblocked. A signed refusal removes the offline lease, as a revocation does.
    /// </summary>
    UserBlocked,

    /// <summary>
    /// The grant (licence or entitlement rule) has an attestation policy and the key server refused this device's
    /// attestation (<c>403 attestation-rejected</c>): evidence missing or not accepted, a challenge not issued or already
    /// used, or an attestation the server later rejected on re-verification. The audit record says which. A signed
    /// refusal removes the offline lease, as a revocation does.
    /// </summary>
    AttestationRejected,

    /// <summary>
    /// The app's <see cref="IDeviceAttestation"/> failed (threw, or returned no evidence) before the release was sent:
    /// the platform could not attest the device key (no hardware attestation, App Attest unsupported, or a transient
    /// platform error). Nothing was sent and the offline lease is kept; the inner exception is the platform's error.
    /// </summary>
    AttestationFailed,
}

/// <summary>
/// The key of a sealed model could not be obtained. <see cref="Reason"/> says why; the message says what to do. Messages
/// never contain tokens, credentials or key material.
/// </summary>
public sealed class ModelKeyUnavailableException : Exception
{
    /// <summary>Creates an exception with reason <see cref="ModelKeyUnavailableReason.InvalidResponse"/>.</summary>
    public ModelKeyUnavailableException()
        : this("The model key is unavailable.")
    {
    }

    /// <summary>Creates an exception with reason <see cref="ModelKeyUnavailableReason.InvalidResponse"/>.</summary>
    public ModelKeyUnavailableException(string message)
        : this(message, null)
    {
    }

    /// <summary>Creates an exception with reason <see cref="ModelKeyUnavailableReason.InvalidResponse"/>.</summary>
    public ModelKeyUnavailableException(string message, Exception? innerException)
        : this(ModelKeyUnavailableReason.InvalidResponse, message, innerException)
    {
    }

    /// <summary>Creates an exception.</summary>
    /// <param name="reason">Why the key is unavailable.</param>
    /// <param name="message">What happened and what to do; no secrets.</param>
    /// <param name="innerException">The cause, if any.</param>
    /// <param name="statusCode">The HTTP status of the server's answer, if there was one.</param>
    /// <param name="problemCode">The server's problem code (docs/protocol.md section 6), if there was one.</param>
    /// <param name="attempts">How many HTTP attempts were made (0 when unknown or none).</param>
    public ModelKeyUnavailableException(ModelKeyUnavailableReason reason, string message, Exception? innerException = null, int? statusCode = null, string? problemCode = null, int attempts = 0)
        : base(message, innerException)
    {
        Reason = reason;
        StatusCode = statusCode;
        ProblemCode = problemCode;
        Attempts = attempts;
    }

    /// <summary>Why the key is unavailable.</summary>
    public ModelKeyUnavailableReason Reason { get; }

    /// <summary>The HTTP status of the server's answer, or null when there was none.</summary>
    public int? StatusCode { get; }

    /// <summary>The server's problem code (for example <c>licence-revoked</c>), or null.</summary>
    public string? ProblemCode { get; }

    /// <summary>How many HTTP attempts the last request made (0 when unknown).</summary>
    public int Attempts { get; }

    /// <summary>
    /// True when the refusal carries the key server's signature over this request (its nonce, device key, model, version
    /// and subject; docs/protocol.md section 2.2), checked with the server's answer key: it cannot come from anyone else.
    /// </summary>
    public bool IsSignedRefusal { get; internal set; }

    /// <summary>
    /// True when the key server itself refused, provably (<see cref="IsSignedRefusal"/>, with 403, 404 or 410): a
    /// definitive answer that removes the offline lease. An unsigned refusal (a proxy's or captive portal's page, or an
    /// attacker's) never is.
    /// </summary>
    public bool IsDefinitiveRefusal => IsSignedRefusal && StatusCode is 403 or 404 or 410;

    /// <summary>The problem document of the refusal (with its signature, if any), for the caller to verify.</summary>
    internal ModelSeal.Protocol.ProblemResponse? Problem { get; init; }
}
