using Microsoft.Extensions.Logging;
using ModelSeal.Protocol;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.Security;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Domain;

/// <summary>
/// A licence to create: who may claim it — with the credential the server returns once, or, when
/// <paramref name="Issuer"/> is set, only with a token of that trusted issuer whose <c>sub</c> is
/// <paramref name="Subject"/> — which models (or <c>*</c>), when, on how many devices, and the attestation policy
/// (a configured policy's name) its device keys must satisfy, if any.
/// </summary>
internal sealed record NewLicence(string Subject, IReadOnlyList<string> Models, DateTimeOffset? NotBefore, DateTimeOffset? ExpiresAt, int MaxDevices, string? Issuer, string? AttestationPolicy = null);

/// <summary>A created licence and, for a credential licence, its credential (shown only now).</summary>
internal sealed record CreatedLicence(LicenceRecord Licence, string? Credential);

/// <summary>
/// A change to a licence: each member given replaces the licence's value, the others stay. A lower
/// <paramref name="MaxDevices"/> than the devices registered keeps them and refuses new ones (<see cref="ReleaseRules"/>).
/// <paramref name="AttestationPolicy"/> names a configured policy, or is empty to remove the licence's policy;
/// <paramref name="RemoveExpiry"/> makes the licence valid without end.
/// </summary>
internal sealed record LicenceChange(DateTimeOffset? ExpiresAt, int? MaxDevices, IReadOnlyList<string>? Models, string? AttestationPolicy = null, bool RemoveExpiry = false);

/// <summary>Licences and the devices registered under them (docs/protocol.md section 3). Every change is audited.</summary>
internal sealed class Licences(Store store, Clock clock, ILogger<Licences> logger)
{
    public List<LicenceRecord> List() => store.Read(s => s.Licences.List());

    /// <summary>A licence's term: an end, when given, later than a start, when given (creation and edits).</summary>
    public static bool IsValidTerm(DateTimeOffset? notBefore, DateTimeOffset? expiresAt) => expiresAt is null || notBefore is null || expiresAt > notBefore;

    public async Task<CreatedLicence> CreateAsync(Caller admin, NewLicence spec, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(admin);
        ArgumentNullException.ThrowIfNull(spec);
        DateTimeOffset now = clock.Now();
        string licenceId = "lic_" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));

        // A licence claimed by (issuer, subject) has no credential: its stored hash is of a value nobody ever sees.
        string credential = Credentials.New();
        bool byIssuer = spec.Issuer is not null;
        var licence = new LicenceRecord(
            licenceId, spec.Subject, spec.Models, spec.NotBefore, spec.ExpiresAt, spec.MaxDevices, now, null, Credentials.Hash(credential),
            byIssuer ? LicenceClaim.IssuerSubject : LicenceClaim.Credential, spec.Issuer, spec.AttestationPolicy);
        await store.WriteAsync(
            s =>
            {
                s.Licences.Insert(licence);
                return s.Audit.Append(ModelCatalogue.Change(admin, AuditEvents.LicenceCreated) with { LicenceId = licenceId }, now);
            },
            cancellationToken).ConfigureAwait(false);
        ServerLog.AdminChange(logger, admin.Subject, AuditEvents.LicenceCreated, licenceId);
        return new CreatedLicence(licence, byIssuer ? null : credential);
    }

    /// <summary>Revokes a licence (idempotent: revoking again changes nothing and records nothing).</summary>
    public async Task<Outcome<LicenceRecord>> RevokeAsync(Caller admin, string licenceId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(admin);
        DateTimeOffset now = clock.Now();
        LicenceRecord? licence = await store.WriteAsync(
            s =>
            {
                LicenceRecord? existing = s.Licences.Get(licenceId);
                if (existing is not null && existing.RevokedAt is null)
                {
                    s.Licences.Revoke(licenceId, now);
                    s.Audit.Append(ModelCatalogue.Change(admin, AuditEvents.LicenceRevoked) with { LicenceId = licenceId }, now);
                    existing = existing with { RevokedAt = now };
                }

                return existing;
            },
            cancellationToken).ConfigureAwait(false);
        if (licence is null)
        {
            return NotFound;
        }

        ServerLog.AdminChange(logger, admin.Subject, AuditEvents.LicenceRevoked, licence.LicenceId);
        return licence;
    }

    /// <summary>
    /// Changes a licence's end of validity, device limit, models or attestation policy. The audit record (<c>licence.changed</c>) names
    /// in its attributes each member that changed, with its new value and, as <c>NAME.was</c>, the one before;
    /// a change that changes nothing records nothing.
    /// </summary>
    public async Task<Outcome<LicenceRecord>> EditAsync(Caller admin, string licenceId, LicenceChange change, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(admin);
        ArgumentNullException.ThrowIfNull(change);
        DateTimeOffset now = clock.Now();
        (LicenceRecord? licence, bool changed, bool endsTooEarly) = await store.WriteAsync<(LicenceRecord?, bool, bool)>(
            s =>
            {
                LicenceRecord? existing = s.Licences.Get(licenceId);
                if (existing is null)
                {
                    return (null, false, false);
                }

                LicenceRecord edited = existing with
                {
                    ExpiresAt = change.RemoveExpiry ? null : change.ExpiresAt ?? existing.ExpiresAt,
                    MaxDevices = change.MaxDevices ?? existing.MaxDevices,
                    Models = change.Models ?? existing.Models,
                    AttestationPolicy = change.AttestationPolicy is null ? existing.AttestationPolicy : change.AttestationPolicy.Length == 0 ? null : change.AttestationPolicy,
                };
                if (!IsValidTerm(edited.NotBefore, edited.ExpiresAt))
                {
                    return (existing, false, true);
                }

                var attributes = new Dictionary<string, string>(StringComparer.Ordinal);
                if (edited.ExpiresAt != existing.ExpiresAt)
                {
                    attributes["expiresAt"] = Rfc3339.Format(edited.ExpiresAt) ?? string.Empty;
                    attributes["expiresAt.was"] = Rfc3339.Format(existing.ExpiresAt) ?? string.Empty;
                }

                if (edited.MaxDevices != existing.MaxDevices)
                {
                    attributes["maxDevices"] = edited.MaxDevices.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    attributes["maxDevices.was"] = existing.MaxDevices.ToString(System.Globalization.CultureInfo.InvariantCulture);
                }

                if (!edited.Models.SequenceEqual(existing.Models, StringComparer.Ordinal))
                {
                    attributes["models"] = string.Join(',', edited.Models);
                    attributes["models.was"] = string.Join(',', existing.Models);
                }

                if (!string.Equals(edited.AttestationPolicy, existing.AttestationPolicy, StringComparison.Ordinal))
                {
                    attributes["attestationPolicy"] = edited.AttestationPolicy ?? string.Empty;
                    attributes["attestationPolicy.was"] = existing.AttestationPolicy ?? string.Empty;
                }

                if (attributes.Count == 0)
                {
                    return (existing, false, false);
                }

                s.Licences.Update(licenceId, edited.ExpiresAt, edited.MaxDevices, edited.Models, edited.AttestationPolicy);
                s.Audit.Append(ModelCatalogue.Change(admin, AuditEvents.LicenceChanged) with { LicenceId = licenceId, Attributes = attributes }, now);
                return (edited, true, false);
            },
            cancellationToken).ConfigureAwait(false);
        if (licence is null)
        {
            return NotFound;
        }

        if (endsTooEarly)
        {
            return new Refused(Refusal.InvalidRequest, $"expiresAt must be later than the licence's notBefore ({Rfc3339.Format(licence.NotBefore)}).");
        }

        if (changed)
        {
            ServerLog.AdminChange(logger, admin.Subject, AuditEvents.LicenceChanged, licenceId);
        }

        return licence;
    }

    /// <summary>Removes a device from a licence, which frees its slot for another device; audited (<c>device.removed</c>).</summary>
    public async Task<Outcome<DeviceRecord>> RemoveDeviceAsync(Caller admin, string licenceId, string thumbprint, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(admin);
        DateTimeOffset now = clock.Now();
        Outcome<DeviceRecord> removed = await store.WriteAsync<Outcome<DeviceRecord>>(
            s =>
            {
                if (s.Licences.Get(licenceId) is null)
                {
                    return NotFound;
                }

                DeviceRecord? device = s.Devices.Get(licenceId, thumbprint);
                if (device is null || !s.Devices.Delete(licenceId, thumbprint))
                {
                    return new Refused(Refusal.DeviceNotFound, $"Licence '{licenceId}' has no device '{thumbprint}'.");
                }

                s.Audit.Append(ModelCatalogue.Change(admin, AuditEvents.DeviceRemoved) with { LicenceId = licenceId, Device = thumbprint }, now);
                return device;
            },
            cancellationToken).ConfigureAwait(false);
        if (removed.Succeeded)
        {
            ServerLog.AdminChange(logger, admin.Subject, AuditEvents.DeviceRemoved, licenceId);
        }

        return removed;
    }

    public Outcome<List<DeviceRecord>> Devices(string licenceId)
    {
        List<DeviceRecord>? devices = store.Read(s => s.Licences.Get(licenceId) is null ? null : s.Devices.List(licenceId));
        return devices is null ? NotFound : devices;
    }

    /// <summary>The licence whose credential this is; only credential licences can be claimed this way.</summary>
    public LicenceRecord? Authenticate(string licenceId, string credential)
    {
        LicenceRecord? licence = store.Read(s => s.Licences.Get(licenceId));
        bool matches = Credentials.Matches(credential, licence?.CredentialHash);
        return matches && licence!.Claim == LicenceClaim.Credential ? licence : null;
    }

    private static Refused NotFound => new(Refusal.LicenceNotFound, "There is no licence with this id.");
}
