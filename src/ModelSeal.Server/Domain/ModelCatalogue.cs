using System.Data.Common;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using ModelSeal.Hpke;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.MasterKeys;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Domain;

/// <summary>A deleted model: how many (destroyed) versions went with it, and when.</summary>
internal sealed record DeletedModel(int Versions, DateTimeOffset DeletedAt);

/// <summary>
/// Models and their versions (docs/protocol.md section 3): creating them (a new version gets a new data key, wrapped
/// by the current master key and handed to the publisher sealed to its public key) and changing a version's state.
/// Every change is audited in its own transaction.
/// </summary>
internal sealed class ModelCatalogue(Store store, MasterKeyRing masterKeys, Clock clock, ILogger<ModelCatalogue> logger)
{
    /// <summary>How long a publisher may use the key of a version it created.</summary>
    public static readonly TimeSpan PublisherLease = TimeSpan.FromHours(1);

    public List<ModelRecord> List() => store.Read(s => s.Models.List());

    public async Task<Outcome<DateTimeOffset>> CreateModelAsync(Caller admin, string modelId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(admin);
        DateTimeOffset now = clock.Now();
        bool created = await store.WriteAsync(
            s =>
            {
                if (s.Models.Exists(modelId))
                {
                    return false;
                }

                s.Models.Insert(modelId, now);
                s.Audit.Append(Change(admin, AuditEvents.ModelCreated) with { ModelId = modelId }, now);
                return true;
            },
            cancellationToken).ConfigureAwait(false);
        if (!created)
        {
            return new Refused(Refusal.ModelExists, $"Model '{modelId}' already exists.");
        }

        ServerLog.AdminChange(logger, admin.Subject, AuditEvents.ModelCreated, modelId);
        return now;
    }

    /// <summary>
    /// Creates version <paramref name="version"/> (null: the next integer) with a new data key, returned sealed to
    /// <paramref name="publisherKey"/> for <see cref="PublisherLease"/>.
    /// </summary>
    public async Task<Outcome<ReleasedKey>> CreateVersionAsync(Caller admin, string modelId, string? version, byte[]? publisherKey, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(admin);
        HpkePublicKey? publisher = publisherKey is null ? null : ImportPublicKey(publisherKey);
        if (publisher is null)
        {
            return new Refused(Refusal.InvalidDeviceKey, "publisherPublicKey must be base64url (no padding) of a 65-byte uncompressed point (04 || X || Y) on P-256.");
        }

        DateTimeOffset now = clock.Now();
        DateTimeOffset lease = now + PublisherLease;
        using Outcome<NewVersion> created = await store.WriteAsync(s => InsertVersion(s, admin, modelId, version, publisher, now), cancellationToken).ConfigureAwait(false);
        if (!created.Succeeded)
        {
            return created.Refused;
        }

        (ModelKey key, string name) = created.Value;
        (byte[] enc, byte[] sealedKey) = KeyRelease.Seal(key, publisher, modelId, name, admin.Subject, lease);
        ServerLog.AdminChange(logger, admin.Subject, AuditEvents.VersionCreated, key.KeyId);
        return new ReleasedKey(modelId, name, key.KeyId, enc, sealedKey, lease);
    }

    /// <summary>Moves a version to <paramref name="target"/>; a destroyed version cannot change again. Idempotent.</summary>
    public async Task<Outcome<VersionState>> ChangeStateAsync(Caller admin, string modelId, string version, VersionState target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(admin);
        DateTimeOffset now = clock.Now();
        string auditEvent = target switch
        {
            VersionState.Active => AuditEvents.VersionEnabled,
            VersionState.Disabled => AuditEvents.VersionDisabled,
            _ => AuditEvents.VersionDestroyed,
        };
        Outcome<string> changed = await store.WriteAsync<Outcome<string>>(
            s =>
            {
                if (!s.Models.Exists(modelId))
                {
                    return new Refused(Refusal.ModelNotFound, $"There is no model '{modelId}'.");
                }

                VersionRecord? record = s.Models.FindVersion(modelId, version);
                if (record is null)
                {
                    return new Refused(Refusal.VersionNotFound, $"Model '{modelId}' has no version '{version}'.");
                }

                if (record.State == VersionState.Destroyed && target != VersionState.Destroyed)
                {
                    return new Refused(Refusal.VersionDestroyed, $"The key of version '{version}' was destroyed; a destroyed version cannot change state.");
                }

                if (record.State != target)
                {
                    s.Models.SetState(record.Sequence, target);
                    s.Audit.Append(Change(admin, auditEvent) with { ModelId = modelId, Version = version, KeyId = record.KeyId }, now);
                }

                return record.KeyId;
            },
            cancellationToken).ConfigureAwait(false);
        if (!changed.Succeeded)
        {
            return changed.Refused;
        }

        ServerLog.AdminChange(logger, admin.Subject, auditEvent, changed.Value);
        if (target == VersionState.Destroyed)
        {
            try
            {
                await store.CheckpointAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (DbException e)
            {
                ServerLog.CheckpointFailed(logger, e.GetType().Name);
            }
        }

        return target;
    }

    /// <summary>
    /// Deletes a model whose versions are all destroyed (or that has none), with its version rows; audited
    /// (<c>model.deleted</c>, with the number of versions). Refused while a version still has a key.
    /// </summary>
    /// <returns>How many (destroyed) versions the model had, and when it was deleted.</returns>
    public async Task<Outcome<DeletedModel>> DeleteModelAsync(Caller admin, string modelId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(admin);
        DateTimeOffset now = clock.Now();
        Outcome<DeletedModel> deleted = await store.WriteAsync<Outcome<DeletedModel>>(
            s =>
            {
                if (!s.Models.Exists(modelId))
                {
                    return new Refused(Refusal.ModelNotFound, $"There is no model '{modelId}'.");
                }

                List<VersionRecord> versions = s.Models.Versions(modelId);
                List<string> live = versions.Where(v => v.State != VersionState.Destroyed).Select(v => v.Version).ToList();
                if (live.Count > 0)
                {
                    return new Refused(Refusal.VersionsNotDestroyed, $"Model '{modelId}' still has {live.Count} version(s) with a key ({string.Join(", ", live.Take(10))}); destroy them first.");
                }

                s.Models.Delete(modelId);
                s.Audit.Append(
                    Change(admin, AuditEvents.ModelDeleted) with { ModelId = modelId, Attributes = new Dictionary<string, string>(StringComparer.Ordinal) { ["versions"] = versions.Count.ToString(CultureInfo.InvariantCulture) } },
                    now);
                return new DeletedModel(versions.Count, now);
            },
            cancellationToken).ConfigureAwait(false);
        if (deleted.Succeeded)
        {
            ServerLog.AdminChange(logger, admin.Subject, AuditEvents.ModelDeleted, modelId);
        }

        return deleted;
    }

    /// <summary>The next integer version: one more than the largest all-digit version, or 1.</summary>
    internal static string NextVersion(IEnumerable<string> versions)
    {
        long max = 0;
        foreach (string version in versions)
        {
            if (version.Length <= 18 && version.All(char.IsAsciiDigit) && long.Parse(version, CultureInfo.InvariantCulture) is var number && number > max)
            {
                max = number;
            }
        }

        return (max + 1).ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// <c>{modelId}.{version}.{8 random hex}</c>; when that would pass the 128-character limit of a key id, the
    /// <c>{modelId}.{version}</c> part is cut to fit (the random suffix and the database keep key ids unique).
    /// </summary>
    internal static string NewKeyId(string modelId, string version)
    {
        string prefix = $"{modelId}.{version}";
        const int suffixLength = 1 + 8;
        if (prefix.Length > Identifier.MaxIdLength - suffixLength)
        {
            prefix = prefix[..(Identifier.MaxIdLength - suffixLength)];
        }

        return $"{prefix}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
    }

    private static HpkePublicKey? ImportPublicKey(byte[] publicKey)
    {
        try
        {
            return HpkePublicKey.Import(publicKey);
        }
        catch (ModelKeyException)
        {
            return null;
        }
    }

    /// <summary>An admin change's audit record, before its target is filled in.</summary>
    internal static AuditEntry Change(Caller admin, string auditEvent) => new(auditEvent, "ok", admin.Subject, Client: admin.Client, Issuer: admin.Issuer);

    private Outcome<NewVersion> InsertVersion(WriteSession s, Caller admin, string modelId, string? version, HpkePublicKey publisherKey, DateTimeOffset now)
    {
        if (!s.Models.Exists(modelId))
        {
            // Publishing the first version of a model creates the model, audited as if created on its own.
            s.Models.Insert(modelId, now);
            s.Audit.Append(Change(admin, AuditEvents.ModelCreated) with { ModelId = modelId }, now);
        }

        string name = version ?? NextVersion(s.Models.VersionNames(modelId));
        if (s.Models.FindVersion(modelId, name) is not null)
        {
            return new Refused(Refusal.VersionExists, $"Model '{modelId}' already has version '{name}'.");
        }

        string keyId;
        do
        {
            keyId = NewKeyId(modelId, name);
        }
        while (s.Models.KeyIdExists(keyId));

        byte[] keyBytes = GC.AllocateArray<byte>(ModelKey.SizeInBytes, pinned: true);
        try
        {
            RandomNumberGenerator.Fill(keyBytes);
            (int masterKeyVersion, byte[] wrapped) = masterKeys.Wrap(keyBytes, keyId);
            s.Models.InsertVersion(modelId, name, keyId, masterKeyVersion, wrapped, now);
            s.Audit.Append(Change(admin, AuditEvents.VersionCreated) with { ModelId = modelId, Version = name, KeyId = keyId, Device = publisherKey.Thumbprint }, now);
            return new NewVersion(ModelKey.Import(keyBytes, keyId), name);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(keyBytes);
        }
    }

    /// <summary>A new version's key (disposing zeroes it) and name.</summary>
    private sealed record NewVersion(ModelKey Key, string Version) : IDisposable
    {
        public void Dispose() => Key.Dispose();
    }
}
