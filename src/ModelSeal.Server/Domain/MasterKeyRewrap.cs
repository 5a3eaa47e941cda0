using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.MasterKeys;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Domain;

/// <summary>
/// Moving every stored data key under another master key, inside the caller's write transaction: a rotation (the
/// same ring, its new version) and a migration to another provider (<see cref="MasterKeyMigration"/>) both do this.
/// </summary>
internal static class MasterKeyRewrap
{
    /// <summary>Unwraps every stored data key with <paramref name="from"/> and wraps it with <paramref name="to"/>; returns how many.</summary>
    public static int Rewrap(WriteSession session, MasterKeyRing from, MasterKeyRing to)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        List<WrappedKey> keys = session.Models.WrappedKeys();
        byte[] key = GC.AllocateArray<byte>(ModelKey.SizeInBytes, pinned: true);
        try
        {
            foreach (WrappedKey wrapped in keys)
            {
                from.Unwrap(wrapped.MasterKeyVersion, wrapped.Wrapped!, wrapped.KeyId, key);
                (int version, byte[] rewrapped) = to.Wrap(key, wrapped.KeyId);
                session.Models.UpdateWrappedKey(wrapped.Sequence, version, rewrapped);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }

        return keys.Count;
    }
}

/// <summary>The answer of a master-key rotation.</summary>
internal sealed record Rotation(int MasterKeyVersion, int Rewrapped);

/// <summary>Rotating the master key (docs/deploy.md "Rotation runbook"), audited.</summary>
internal sealed class MasterKeyRotation(Store store, MasterKeyRing masterKeys, Clock clock, ILogger<MasterKeyRotation> logger)
{
    /// <summary>
    /// Adds master key v(N+1) — durably, before anything is wrapped with it — rewraps every data key with it and
    /// records it in the database as the version that wraps, all in one transaction: until it commits, the database
    /// still records the old version, and when it fails the ring goes back to it.
    /// </summary>
    public async Task<Rotation> RotateAsync(Caller admin, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(admin);
        DateTimeOffset now = clock.Now();
        int previous = 0;
        Rotation rotation;
        try
        {
            rotation = await store.WriteAsync(
                s =>
                {
                    previous = masterKeys.CurrentVersion;
                    int version = masterKeys.AddVersion();
                    int rewrapped = MasterKeyRewrap.Rewrap(s, masterKeys, masterKeys);
                    s.MasterKey.Record(version, now);
                    s.Audit.Append(ModelCatalogue.Change(admin, AuditEvents.MasterKeyRotated), now);
                    return new Rotation(version, rewrapped);
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch when (previous != 0)
        {
            // The new version stays in the provider (nothing recorded wraps with it); the recorded one wraps again.
            masterKeys.UseVersion(previous);
            throw;
        }

        ServerLog.MasterKeyRotated(logger, rotation.MasterKeyVersion, rotation.Rewrapped);
        return rotation;
    }
}
