using System.Diagnostics.CodeAnalysis;
using ModelSeal.Server.Text;

namespace ModelSeal.Server.Domain;

/// <summary>
/// Why the server said no, in the domain's words. Each reason has one problem code (<see cref="Refusals.Code"/>), which
/// the audit log records and the HTTP layer maps to a status in its one table (docs/protocol.md section 6).
/// </summary>
internal enum Refusal
{
    /// <summary>No licence matches the token, or it was revoked (both are "licence-revoked": a token learns nothing more).</summary>
    LicenceRevoked,
    LicenceNotYetValid,
    LicenceExpired,
    ModelNotLicensed,
    ModelNotFound,
    VersionNotFound,
    VersionDisabled,
    VersionDestroyed,
    InvalidDeviceKey,
    DeviceLimit,

    /// <summary>The release could not be recorded, so no key was released (fail closed).</summary>
    AuditUnavailable,
    ModelExists,
    VersionExists,
    LicenceNotFound,

    /// <summary>A credential that does not match (one deliberately vague answer).</summary>
    Unauthorized,

    /// <summary>The licence has no registered device with this thumbprint.</summary>
    DeviceNotFound,

    /// <summary>A model cannot be deleted while one of its versions still has a key (is not destroyed).</summary>
    VersionsNotDestroyed,

    /// <summary>A change the rules do not allow (the detail names the member), as a malformed request is.</summary>
    InvalidRequest,

    /// <summary>A trusted issuer's token that no licence and no entitlement rule covers (rules are configured).</summary>
    NoEntitlement,

    /// <summary>The user (issuer, subject) is blocked: no more keys until unblocked.</summary>
    UserBlocked,

    /// <summary>There is no user with this id.</summary>
    UserNotFound,

    /// <summary>The grant has an attestation policy the device key's evidence does not satisfy (the reason is audited, not told).</summary>
    AttestationRejected,
}

/// <summary>
/// A refusal with a detail for the caller (never internals, key material or credentials) and, for
/// <see cref="Refusal.AttestationRejected"/>, the specific reason the audit record carries (attribute <c>attestation</c>).
/// </summary>
internal sealed record Refused(Refusal Reason, string Detail, string? Attestation = null)
{
    /// <summary>What the server's log says of the refusal beyond the code (attestation refusals: the verifier's detail); never sent.</summary>
    public string? LogDetail { get; init; }
}

/// <summary>The problem codes of <see cref="Refusal"/>.</summary>
internal static class Refusals
{
    /// <summary>The problem code: the reason's name in kebab case (<c>LicenceRevoked</c> → <c>licence-revoked</c>).</summary>
    public static string Code(this Refusal reason) => KebabCase.Of(reason.ToString());
}

/// <summary>
/// What a domain operation gives: a value, or a <see cref="Refused"/>. Disposing it disposes a disposable value (a
/// key that a failed commit never hands out is zeroed).
/// </summary>
internal readonly struct Outcome<T> : IDisposable
{
    private Outcome(T? value, Refused? refused)
    {
        Value = value;
        Refused = refused;
    }

    public T? Value { get; }

    public Refused? Refused { get; }

    [MemberNotNullWhen(false, nameof(Refused))]
    [MemberNotNullWhen(true, nameof(Value))]
    public bool Succeeded => Refused is null;

    public void Dispose() => (Value as IDisposable)?.Dispose();

    public static implicit operator Outcome<T>(T value) => new(value, null);

    public static implicit operator Outcome<T>(Refused refused) => new(default, refused);
}
