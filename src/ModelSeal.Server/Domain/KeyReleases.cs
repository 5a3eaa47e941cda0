using System.Data.Common;
using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.MasterKeys;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Domain;

/// <summary>What a device asks for: a model version (or <c>latest</c>) sealed to its public key (null when not base64url).</summary>
internal sealed record ReleaseQuery(string ModelId, string Version, byte[]? DevicePublicKey);

/// <summary>A released data key, sealed with HPKE to the requester's public key: nothing secret.</summary>
internal sealed record ReleasedKey(string ModelId, string Version, string KeyId, byte[] Enc, byte[] SealedKey, DateTimeOffset LeaseExpiresAt);

/// <summary>
/// The key-release decision (docs/protocol.md section 2): <see cref="ReleaseRules"/> in order, then one write
/// transaction that re-checks, registers or touches the device and appends the audit record; only after it commits is
/// the key sealed. Every refusal is audited (best effort); a release whose record cannot be written is refused.
/// </summary>
internal sealed class KeyReleases(Store store, MasterKeyRing masterKeys, Clock clock, ServerOptions options, DeviceKeyCache deviceKeys, AuditTrail audit, ILogger<KeyReleases> logger)
{
    public async Task<Outcome<ReleasedKey>> ReleaseAsync(Caller caller, ReleaseQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(query);
        Activity? activity = Activity.Current?.OperationName == ServerTelemetry.ReleaseActivity ? Activity.Current : null;
        activity?.SetTag("modelseal.model", query.ModelId);
        activity?.SetTag("modelseal.version", query.Version);
        string? device = query.DevicePublicKey is null ? null : HpkePublicKey.ThumbprintOf(query.DevicePublicKey);
        DateTimeOffset now = clock.Now();
        LicenceRecord? licence = store.Read(s => ReleaseRules.MatchLicence(caller, s.Licences.Get, s.Licences.FindByIssuerSubject));
        var record = new AuditEntry(AuditEvents.KeyRefused, string.Empty, caller.Subject, licence?.LicenceId, query.ModelId, query.Version, null, device, caller.Client, caller.Issuer);

        VersionRecord? version = null;
        HpkePublicKey? recipient = null;
        Refused? refused = ReleaseRules.CheckLicence(licence, now, query.ModelId)
            ?? FindVersion(query, out version)
            ?? ReleaseRules.CheckDeviceKey((recipient = deviceKeys.Get(query.DevicePublicKey, device)) is not null);
        if (version is not null)
        {
            record = record with { Version = version.Version, KeyId = version.KeyId };
            activity?.SetTag("modelseal.version", version.Version);
        }

        if (refused is not null)
        {
            return await RefuseAsync(record, refused, cancellationToken).ConfigureAwait(false);
        }

        DateTimeOffset lease = ReleaseRules.LeaseExpiry(now, options.LeaseDuration, licence!);
        Outcome<ModelKey> recorded;
        using (Activity? write = ServerTelemetry.Source.StartActivity(ServerTelemetry.StoreWriteActivity, ActivityKind.Internal))
        {
            // The write runs on the store's writer thread: the unwrap's activity is parented explicitly.
            ActivityContext parent = write?.Context ?? default;
            try
            {
                AuditEntry released = record with { Event = AuditEvents.KeyReleased, Outcome = "ok" };
                recorded = await store.WriteAsync(s => Record(s, version!, licence!, device!, released, now, parent), cancellationToken).ConfigureAwait(false);
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

        using ModelKey key = recorded.Value;
        (byte[] enc, byte[] sealedKey) = KeyRelease.Seal(key, recipient!, query.ModelId, version!.Version, caller.Subject, lease);
        ServerLog.KeyReleased(logger, licence!.LicenceId, version.KeyId, device!);
        return new ReleasedKey(query.ModelId, version.Version, version.KeyId, enc, sealedKey, lease);
    }

    private Refused? FindVersion(ReleaseQuery query, out VersionRecord? version)
    {
        (bool exists, VersionRecord? found) = store.Read(s =>
            (s.Models.Exists(query.ModelId), query.Version == ReleaseRules.Latest ? s.Models.FindLatestActiveVersion(query.ModelId) : s.Models.FindVersion(query.ModelId, query.Version)));
        version = found;
        return ReleaseRules.CheckVersion(query.ModelId, exists, query.Version, found);
    }

    /// <summary>The release's write transaction: the re-checks, the device, the unwrap and the audit record.</summary>
    private Outcome<ModelKey> Record(WriteSession s, VersionRecord version, LicenceRecord licence, string device, AuditEntry released, DateTimeOffset now, ActivityContext parent)
    {
        WrappedKey wrapped = s.Models.ReadKey(version.Sequence);
        bool registered = s.Devices.Exists(licence.LicenceId, device);

        // The licence as it is now: a revocation or a lower device limit (PATCH) since the first read applies.
        LicenceRecord? current = s.Licences.Get(licence.LicenceId);
        Refused? refused = ReleaseRules.Recheck(current ?? licence, current is { RevokedAt: null }, version.Version, wrapped.State, registered, registered ? 0 : s.Devices.Count(licence.LicenceId));
        if (refused is not null)
        {
            return refused;
        }

        if (registered)
        {
            s.Devices.Touch(licence.LicenceId, device, now);
        }
        else
        {
            s.Devices.Insert(licence.LicenceId, device, now);
        }

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
        await audit.TryRecordAsync(record with { Outcome = code }, cancellationToken).ConfigureAwait(false);
        return refused;
    }
}
