using System.Data.Common;
using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using ModelSeal.Hpke;
using ModelSeal.Server.Attestation;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.MasterKeys;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Domain;

/// <summary>What a device asks for: a model version (or <c>latest</c>) sealed to its public key (null when not base64url).</summary>
internal sealed record ReleaseQuery(string ModelId, string Version, byte[]? DevicePublicKey, ReleaseEvidence? Evidence = null);

/// <summary>A released data key, sealed with HPKE to the requester's public key: nothing secret.</summary>
internal sealed record ReleasedKey(string ModelId, string Version, string KeyId, byte[] Enc, byte[] SealedKey, DateTimeOffset LeaseExpiresAt);

/// <summary>
/// The key-release decision (docs/protocol.md section 2): <see cref="ReleaseRules"/> in order, then one write
/// transaction that re-checks, registers or touches the device and appends the audit record; only after it commits is
/// the key sealed. Every refusal is audited (best effort); a release whose record cannot be written is refused.
/// What grants the key is a licence or, for a trusted issuer's caller no licence matches, the first matching
/// entitlement rule (section 2.5); the device then takes a slot of the licence or of the user, never both.
/// </summary>
/// <summary>The key a release transaction unwrapped and the user whose device it registered (0 for a licence); disposing zeroes the key.</summary>
internal sealed record RecordedKey(ModelKey Key, long UserId) : IDisposable
{
    public void Dispose() => Key.Dispose();
}

internal sealed class KeyReleases(Store store, MasterKeyRing masterKeys, Clock clock, ServerOptions options, DeviceKeyCache deviceKeys, AuditTrail audit, EntitlementRuleSet entitlements, AttestationTrust attestationTrust, ILogger<KeyReleases> logger)
{
    /// <summary>The audit attribute that names the entitlement rule that decided (docs/protocol.md section 4).</summary>
    public const string RuleAttribute = "rule";

    /// <summary>The audit attribute with the reason an attestation was refused (docs/protocol.md section 2.6).</summary>
    public const string AttestationAttribute = "attestation";

    public async Task<Outcome<ReleasedKey>> ReleaseAsync(Caller caller, ReleaseQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(query);
        Activity? activity = Activity.Current?.OperationName == ServerTelemetry.ReleaseActivity ? Activity.Current : null;
        activity?.SetTag("modelseal.model", query.ModelId);
        activity?.SetTag("modelseal.version", query.Version);
        string? device = query.DevicePublicKey is null ? null : HpkePublicKey.ThumbprintOf(query.DevicePublicKey);
        DateTimeOffset now = clock.Now();
        // One connection for every read the decision needs; whether the model exists is asked only when no version
        // matched, the device key's accepted attestation only when the grant has an attestation policy.
        // A licence bound to (issuer, subject) takes precedence; otherwise the first matching rule decides.
        IReadOnlyList<EntitlementRule> rules = entitlements.Rules;
        (LicenceRecord? licence, EntitlementRule? rule, DateTimeOffset? blockedAt, VersionRecord? version, bool modelExists, DeviceAttestationRecord? accepted) = store.Read(s =>
        {
            VersionRecord? found = query.Version == ReleaseRules.Latest ? s.Models.FindLatestActiveVersion(query.ModelId) : s.Models.FindVersion(query.ModelId, query.Version);
            LicenceRecord? matched = ReleaseRules.MatchLicence(caller, s.Licences.Get, s.Licences.FindByIssuerSubject);
            EntitlementRule? matchedRule = matched is null && !caller.OwnIssuer ? Entitlements.Match(rules, caller, now) : null;
            string? policy = matched?.AttestationPolicy ?? matchedRule?.AttestationPolicy;
            return (
                matched,
                matchedRule,
                caller.OwnIssuer ? null : s.Users.BlockedAt(caller.Issuer, caller.Subject),
                found,
                found is not null || s.Models.Exists(query.ModelId),
                policy is not null && device is not null ? s.Attestations.Find(device) : null);
        });

        bool byRule = licence is null && !caller.OwnIssuer;
        string? attestationPolicy = licence?.AttestationPolicy ?? rule?.AttestationPolicy;
        var record = new AuditEntry(
            AuditEvents.KeyRefused, string.Empty, caller.Subject, licence?.LicenceId, query.ModelId, query.Version, null, device, caller.Client, caller.Issuer,
            rule is null ? null : new Dictionary<string, string>(StringComparer.Ordinal) { [RuleAttribute] = rule.Name });

        HpkePublicKey? recipient = null;
        Refused? refused = ReleaseRules.CheckUser(blockedAt)
            ?? (byRule ? ReleaseRules.CheckRule(rule, rules.Count > 0, query.ModelId) : ReleaseRules.CheckLicence(licence, now, query.ModelId));
        if (refused is null)
        {
            // The caller may have this model: the audit record names the version it asked for (or got).
            if (version is not null)
            {
                record = record with { Version = version.Version, KeyId = version.KeyId };
                activity?.SetTag("modelseal.version", version.Version);
            }

            refused = ReleaseRules.CheckVersion(query.ModelId, modelExists, query.Version, version)
                ?? ReleaseRules.CheckDeviceKey((recipient = deviceKeys.Get(query.DevicePublicKey, device)) is not null);
        }

        // The attestation rule, last before the write: the evidence is verified here (pure), nothing is written yet.
        AttestationStep? attestation = null;
        if (refused is null && attestationPolicy is not null)
        {
            Outcome<AttestationStep?> checkedAttestation = AttestationRules.Check(attestationPolicy, attestationTrust, accepted, query.Evidence, query.DevicePublicKey!, device!, now);
            if (checkedAttestation.Succeeded)
            {
                attestation = checkedAttestation.Value;
            }
            else
            {
                refused = checkedAttestation.Refused;
                if (refused.Attestation == AttestationFailure.PolicyUnknown.Code())
                {
                    ServerLog.AttestationPolicyUnknown(logger, attestationPolicy);
                }

                // The evidence was examined: its challenge is used up by the refusal too (best effort).
                await ConsumeChallengeAsync(caller, query.Evidence, now, cancellationToken).ConfigureAwait(false);
            }
        }

        if (refused is not null)
        {
            return await RefuseAsync(record, refused, cancellationToken).ConfigureAwait(false);
        }

        DateTimeOffset lease = rule is not null ? ReleaseRules.LeaseExpiry(now, options.LeaseDuration, rule) : ReleaseRules.LeaseExpiry(now, options.LeaseDuration, licence!);
        Outcome<RecordedKey> recorded;
        using (Activity? write = ServerTelemetry.Source.StartActivity(ServerTelemetry.StoreWriteActivity, ActivityKind.Internal))
        {
            // The write runs on the store's writer thread: the unwrap's activity is parented explicitly.
            ActivityContext parent = write?.Context ?? default;
            try
            {
                AuditEntry released = record with { Event = AuditEvents.KeyReleased, Outcome = "ok" };
                recorded = await store.WriteAsync(
                    s => ConsumeChallenge(s, attestation, caller, now) ?? Accept(s, attestation, device!, now, rule is not null ? RecordForUser(s, version!, rule, caller, device!, released, now, parent) : Record(s, version!, licence!, caller, device!, released, now, parent)),
                    cancellationToken).ConfigureAwait(false);
            }
            catch (DbException e)
            {
                write?.SetStatus(ActivityStatusCode.Error, e.GetType().Name);
                ServerLog.AuditUnavailable(logger, e.GetType().Name, store.ErrorCode(e));
                return new Refused(Refusal.AuditUnavailable, "The release could not be recorded in the audit log, so no key was released. Try again later.");
            }
        }

        if (!recorded.Succeeded)
        {
            return await RefuseAsync(record, recorded.Refused, cancellationToken).ConfigureAwait(false);
        }

        using ModelKey key = recorded.Value.Key;
        (byte[] enc, byte[] sealedKey) = KeyRelease.Seal(key, recipient!, query.ModelId, version!.Version, caller.Subject, lease);
        if (rule is not null)
        {
            ServerLog.KeyReleasedByRule(logger, rule.Name, recorded.Value.UserId, version.KeyId, device!);
        }
        else
        {
            ServerLog.KeyReleased(logger, licence!.LicenceId, version.KeyId, device!);
        }

        return new ReleasedKey(query.ModelId, version.Version, version.KeyId, enc, sealedKey, lease);
    }

    /// <summary>
    /// First in the release transaction, when evidence was examined: uses up its challenge (issued to this caller, not
    /// expired, not used: otherwise <c>challenge-unknown</c>, and nothing else is written). Null when the release goes on.
    /// </summary>
    private static Refused? ConsumeChallenge(WriteSession s, AttestationStep? step, Caller caller, DateTimeOffset now) =>
        step is null || s.Attestations.ConsumeChallenge(step.Challenge, caller.Issuer, caller.Subject, now)
            ? null
            : AttestationRules.Rejected(AttestationFailure.ChallengeUnknown.Code(), "The evidence's challenge was not issued to this caller, has expired, or was used already.");

    /// <summary>Last in the release transaction, once the device is registered: stores the accepted attestation or the App Attest counter.</summary>
    private static Outcome<RecordedKey> Accept(WriteSession s, AttestationStep? step, string device, DateTimeOffset now, Outcome<RecordedKey> recorded)
    {
        if (step is null || !recorded.Succeeded)
        {
            return recorded;
        }

        try
        {
            if (step.Accept is { } accept)
            {
                s.Attestations.Accept(accept);
            }
            else if (step.Counter is { } counter)
            {
                s.Attestations.Reasserted(device, counter, now);
            }
        }
        catch
        {
            recorded.Dispose();
            throw;
        }

        return recorded;
    }

    private async Task ConsumeChallengeAsync(Caller caller, ReleaseEvidence? evidence, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (evidence is null)
        {
            return;
        }

        try
        {
            await store.WriteAsync(s => s.Attestations.ConsumeChallenge(evidence.Challenge, caller.Issuer, caller.Subject, now), cancellationToken).ConfigureAwait(false);
        }
        catch (DbException e)
        {
            ServerLog.AuditUnavailable(logger, e.GetType().Name, store.ErrorCode(e));
        }
    }

    /// <summary>A licence's release transaction: the re-checks, the device, the unwrap and the audit record.</summary>
    private Outcome<RecordedKey> Record(WriteSession s, VersionRecord version, LicenceRecord licence, Caller caller, string device, AuditEntry released, DateTimeOffset now, ActivityContext parent)
    {
        WrappedKey wrapped = s.Models.ReadKey(version.Sequence);
        long? lastSeen = s.Devices.LastSeen(licence.LicenceId, device);
        bool registered = lastSeen is not null;

        // The licence as it is now: a revocation or a lower device limit (PATCH) since the first read applies.
        LicenceRecord? current = s.Licences.Get(licence.LicenceId);
        Refused? refused = ReleaseRules.Recheck(current ?? licence, current is { RevokedAt: null }, version.Version, wrapped.State, registered, registered ? 0 : s.Devices.Count(licence.LicenceId));
        if (refused is not null)
        {
            return refused;
        }

        if (registered)
        {
            // Last-seen times have a resolution of one second: most repeat releases have nothing to write.
            if (lastSeen < DbSession.Seconds(now))
            {
                s.Devices.Touch(licence.LicenceId, device, now);
            }
        }
        else
        {
            s.Devices.Insert(licence.LicenceId, device, now);
            if (!caller.OwnIssuer)
            {
                // The licence grants this device now: it leaves the user's slots (a device is counted under one grant).
                s.Users.ReleaseDevice(caller.Issuer, caller.Subject, device);
            }
        }

        return new RecordedKey(UnwrapAndAudit(s, wrapped, version, released, now, parent), 0);
    }

    /// <summary>
    /// A rule's release transaction: the user's block and the version again, the device under the user (registered or
    /// a free slot of the rule's limit), the user created at its first release, the unwrap and the audit record.
    /// </summary>
    private Outcome<RecordedKey> RecordForUser(WriteSession s, VersionRecord version, EntitlementRule rule, Caller caller, string device, AuditEntry released, DateTimeOffset now, ActivityContext parent)
    {
        WrappedKey wrapped = s.Models.ReadKey(version.Sequence);
        UserDeviceState? user = s.Users.FindWithDevice(caller.Issuer, caller.Subject, device);
        bool registered = user?.DeviceLastSeen is not null;
        long count = user is null || registered ? 0 : s.Users.DeviceCount(user.UserId);
        Refused? refused = ReleaseRules.RecheckUser(rule, user?.BlockedAt is not null, version.Version, wrapped.State, registered, count);
        if (refused is not null)
        {
            return refused;
        }

        // Last-seen times have a resolution of one second: most repeat releases have nothing to write.
        long seconds = DbSession.Seconds(now);
        long userId = user?.UserId ?? s.Users.GetOrCreate(caller.Issuer, caller.Subject, now);
        if (!registered)
        {
            s.Users.InsertDevice(userId, device, rule.Name, now);
        }
        else if (user!.DeviceLastSeen < seconds)
        {
            s.Users.TouchDevice(userId, device, now);
        }

        if (user is not null && user.LastSeen < seconds)
        {
            s.Users.Touch(userId, now);
        }

        return new RecordedKey(UnwrapAndAudit(s, wrapped, version, released, now, parent), userId);
    }

    private ModelKey UnwrapAndAudit(WriteSession s, WrappedKey wrapped, VersionRecord version, AuditEntry released, DateTimeOffset now, ActivityContext parent)
    {
        byte[] keyBytes = GC.AllocateArray<byte>(ModelKey.SizeInBytes, pinned: true);
        try
        {
            masterKeys.Unwrap(wrapped.MasterKeyVersion, wrapped.Wrapped!, version.KeyId, keyBytes, parent);
            var key = ModelKey.Import(keyBytes, version.KeyId);
            try
            {
                s.Audit.Append(released, now);
            }
            catch
            {
                key.Dispose();
                throw;
            }

            return key;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(keyBytes);
        }
    }

    private async Task<Outcome<ReleasedKey>> RefuseAsync(AuditEntry record, Refused refused, CancellationToken cancellationToken)
    {
        string code = refused.Reason.Code();
        ServerLog.KeyRefused(logger, code, record.LicenceId, record.ModelId, record.Version, record.Device);
        if (refused.Attestation is { } reason)
        {
            // The client hears attestation-rejected; the record says why.
            ServerLog.AttestationRefused(logger, record.Device, reason, refused.LogDetail ?? refused.Detail);
            var attributes = new Dictionary<string, string>(record.Attributes ?? new Dictionary<string, string>(), StringComparer.Ordinal) { [AttestationAttribute] = reason };
            record = record with { Attributes = attributes };
        }

        await audit.TryRecordAsync(record with { Outcome = code }, cancellationToken).ConfigureAwait(false);
        return refused;
    }
}
