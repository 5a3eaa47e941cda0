using Microsoft.Extensions.Logging;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.MasterKeys;

/// <summary>
/// Which master-key version wraps new data keys: the one the database records (<see cref="MasterKeyWrites"/>), never
/// merely the highest the token or <c>master.keys</c> holds — anyone with the token's user PIN could add a
/// <c>&lt;label&gt;-vN</c> there. The record is written when the first master key is created, adopted once from the
/// provider for a database of an older server, and moved in the transaction that completes a rotation.
/// </summary>
internal static class MasterKeyVersions
{
    /// <summary>
    /// Opens the configured master keys for a server on <paramref name="store"/> (creating v1 when no data key needs
    /// an existing one) and makes the recorded version current, recording it first when none is.
    /// </summary>
    /// <exception cref="ServerConfigurationException">The keys cannot be opened, or the recorded version is missing while data keys are stored.</exception>
    public static MasterKeyRing Open(MasterKeyOptions options, string masterKeysPath, Store store, DateTimeOffset now, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(logger);
        bool hasKeys = store.Read(s => s.Models.HasWrappedKeys());
        MasterKeyRing ring = MasterKeyProviders.Open(options, masterKeysPath, mayCreate: !hasKeys);
        try
        {
            ring.Logger = logger;
            Establish(ring, store, hasKeys, now, logger);
            ring.RecordedVersion = () => store.Read(s => s.MasterKey.Get()?.Version);
            return ring;
        }
        catch
        {
            ring.Dispose();
            throw;
        }
    }

    /// <summary>Makes the version the database records current in <paramref name="ring"/>, recording the ring's current version when none is.</summary>
    internal static void Establish(MasterKeyRing ring, Store store, bool hasKeys, DateTimeOffset now, ILogger logger)
    {
        MasterKeyRecord? recorded = store.Read(s => s.MasterKey.Get());
        if (recorded is null)
        {
            // The first start (v1 was just created), or the first start after an upgrade: adopt the provider's latest, once.
            int adopted = ring.CurrentVersion;
            ring.UseVersion(Write(store, s => s.MasterKey.RecordFirst(adopted, now)));
            if (hasKeys)
            {
                KeyStoreLog.VersionAdopted(logger, ring.CurrentVersion, ring.Provider.Description);
            }
        }
        else if (!hasKeys && !ring.Provider.Holds(recorded.Version))
        {
            // The master keys were replaced while no data key was stored: nothing depends on the recorded one.
            int latest = ring.Provider.LatestVersion;
            Write(store, s =>
            {
                s.MasterKey.Record(latest, now);
                return 0;
            });
            ring.UseVersion(latest);
            KeyStoreLog.VersionReplaced(logger, recorded.Version, ring.Provider.Description, latest);
        }
        else
        {
            ring.UseVersion(recorded.Version);
        }

        ring.Refresh();
    }

    private static T Write<T>(Store store, Func<WriteSession, T> work) => store.WriteAsync(work, CancellationToken.None).GetAwaiter().GetResult();
}
