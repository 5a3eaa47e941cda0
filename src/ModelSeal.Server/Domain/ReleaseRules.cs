using ModelSeal.Server.Configuration;
using ModelSeal.Server.Storage;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Domain;

/// <summary>
/// The rules of a key release (docs/protocol.md section 2) as pure functions, in the protocol's order: the licence,
/// the model and version, the device key (before the transaction), then — inside the write transaction — the
/// licence and version again and the device limit, so that a change committed first is always honoured.
/// </summary>
internal static class ReleaseRules
{
    /// <summary>The version name that asks for the active version created last.</summary>
    public const string Latest = "latest";

    /// <summary>
    /// The licence that <paramref name="caller"/> may use, matched exactly on how it may be claimed: the server's own
    /// token names a credential licence by its <c>lic</c> claim (and must carry its subject); an external issuer's token
    /// matches the newest licence claimed by (that issuer, its <c>sub</c>). Null when none matches.
    /// </summary>
    public static LicenceRecord? MatchLicence(Caller caller, Func<string, LicenceRecord?> byId, Func<string, string, LicenceRecord?> byIssuerSubject)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(byId);
        ArgumentNullException.ThrowIfNull(byIssuerSubject);
        if (!caller.OwnIssuer)
        {
            return byIssuerSubject(caller.Issuer, caller.Subject);
        }

        LicenceRecord? licence = caller.LicenceId is null ? null : byId(caller.LicenceId);
        return licence is { Claim: LicenceClaim.Credential } && string.Equals(licence.Subject, caller.Subject, StringComparison.Ordinal) ? licence : null;
    }

    /// <summary>Checks 1–4: a licence exists and is not revoked, is valid now, and covers the model.</summary>
    public static Refused? CheckLicence(LicenceRecord? licence, DateTimeOffset now, string modelId)
    {
        if (licence is null)
        {
            return new(Refusal.LicenceRevoked, "No licence exists for this token.");
        }

        return CheckStanding(licence, now) ?? (licence.Covers(modelId) ? null : new(Refusal.ModelNotLicensed, $"The licence does not cover model '{modelId}'."));
    }

    /// <summary>
    /// Checks 2–3: the licence is not revoked and is valid now (revocation first). Also the rule of <c>POST /v1/token</c>
    /// for a licence whose credential matched (<see cref="TokenGrants.Licence"/>).
    /// </summary>
    public static Refused? CheckStanding(LicenceRecord licence, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(licence);
        if (licence.RevokedAt is not null)
        {
            return new(Refusal.LicenceRevoked, "The licence was revoked.");
        }

        if (licence.NotBefore is { } notBefore && now < notBefore)
        {
            return new(Refusal.LicenceNotYetValid, $"The licence is valid from {Rfc3339.Format(notBefore)}.");
        }

        if (licence.ExpiresAt is { } expiresAt && now >= expiresAt)
        {
            return new(Refusal.LicenceExpired, $"The licence expired at {Rfc3339.Format(expiresAt)}.");
        }

        return null;
    }

    /// <summary>
    /// The user's block, first: a blocked user (issuer, subject) gets no key, under a licence or a rule.
    /// </summary>
    public static Refused? CheckUser(DateTimeOffset? blockedAt) =>
        blockedAt is null ? null : new(Refusal.UserBlocked, "The user is blocked; no key is released until an administrator unblocks the user.");

    /// <summary>
    /// Checks 1 and 4 for a trusted issuer's caller that no licence matched (section 2.5): the first matching rule
    /// decides, and it must cover the model. With no rule configured at all the answer is the licence check's.
    /// </summary>
    public static Refused? CheckRule(EntitlementRule? rule, bool rulesConfigured, string modelId)
    {
        if (rule is null)
        {
            return rulesConfigured
                ? new(Refusal.NoEntitlement, "No licence and no entitlement rule covers this token's user.")
                : new(Refusal.LicenceRevoked, "No licence exists for this token.");
        }

        return rule.Covers(modelId) ? null : new(Refusal.ModelNotLicensed, $"The entitlement rule '{rule.Name}' does not cover model '{modelId}'.");
    }

    /// <summary>
    /// Inside the transaction, for a rule's grant: the user is still not blocked, the version still active, and the
    /// device is registered already or the user has fewer devices than the rule allows.
    /// </summary>
    public static Refused? RecheckUser(EntitlementRule rule, bool blocked, string version, VersionState state, bool deviceRegistered, long deviceCount)
    {
        ArgumentNullException.ThrowIfNull(rule);
        if (blocked)
        {
            return CheckUser(DateTimeOffset.MinValue);
        }

        return CheckState(version, state)
            ?? (deviceRegistered || deviceCount < rule.MaxDevices ? null : new(Refusal.DeviceLimit, $"The entitlement rule '{rule.Name}' allows {rule.MaxDevices} device(s) per user and all are registered."));
    }

    /// <summary>How long a key released under a rule may be used offline: the rule's lease (or the server's), capped by its end.</summary>
    public static DateTimeOffset LeaseExpiry(DateTimeOffset now, TimeSpan serverDuration, EntitlementRule rule)
    {
        ArgumentNullException.ThrowIfNull(rule);
        DateTimeOffset lease = now + (rule.LeaseDuration ?? serverDuration);
        if (rule.NotAfter is { } cap && cap < lease)
        {
            lease = cap;
        }

        return DateTimeOffset.FromUnixTimeSeconds(lease.ToUnixTimeSeconds());
    }

    /// <summary>Checks 5–6: the model and the version exist, and the version is active.</summary>
    public static Refused? CheckVersion(string modelId, bool modelExists, string requestedVersion, VersionRecord? version)
    {
        if (!modelExists)
        {
            return new(Refusal.ModelNotFound, $"There is no model '{modelId}'.");
        }

        if (version is null)
        {
            return new(Refusal.VersionNotFound, requestedVersion == Latest ? $"Model '{modelId}' has no active version." : $"Model '{modelId}' has no version '{requestedVersion}'.");
        }

        return CheckState(version.Version, version.State);
    }

    /// <summary>Check 7: the device key is a valid P-256 point.</summary>
    public static Refused? CheckDeviceKey(bool valid) =>
        valid ? null : new(Refusal.InvalidDeviceKey, "devicePublicKey must be base64url (no padding) of a 65-byte uncompressed point (04 || X || Y) on P-256.");

    /// <summary>
    /// Inside the transaction: the licence is still not revoked, the version still active, and the device is
    /// registered already or the licence has a free device slot.
    /// </summary>
    public static Refused? Recheck(LicenceRecord licence, bool licenceActive, string version, VersionState state, bool deviceRegistered, long deviceCount)
    {
        ArgumentNullException.ThrowIfNull(licence);
        if (!licenceActive)
        {
            return new(Refusal.LicenceRevoked, "The licence was revoked.");
        }

        return CheckState(version, state)
            ?? (deviceRegistered || deviceCount < licence.MaxDevices ? null : new(Refusal.DeviceLimit, $"The licence allows {licence.MaxDevices} device(s) and all are registered."));
    }

    /// <summary>How long the released key may be used offline: the lease duration, capped by the licence's expiry.</summary>
    public static DateTimeOffset LeaseExpiry(DateTimeOffset now, TimeSpan duration, LicenceRecord licence)
    {
        ArgumentNullException.ThrowIfNull(licence);
        DateTimeOffset lease = now + duration;
        if (licence.ExpiresAt is { } cap && cap < lease)
        {
            lease = cap;
        }

        return DateTimeOffset.FromUnixTimeSeconds(lease.ToUnixTimeSeconds());
    }

    private static Refused? CheckState(string version, VersionState state) => state switch
    {
        VersionState.Active => null,
        VersionState.Destroyed => new(Refusal.VersionDestroyed, $"The key of version '{version}' was destroyed; files sealed with it can no longer be opened."),
        _ => new(Refusal.VersionDisabled, $"Version '{version}' is disabled."),
    };
}
