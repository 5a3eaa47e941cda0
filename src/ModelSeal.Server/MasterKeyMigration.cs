using System.Globalization;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Files;
using ModelSeal.Server.MasterKeys;
using ModelSeal.Server.Security;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server;

/// <summary>What <see cref="MasterKeyMigration.Migrate"/> did.</summary>
/// <param name="Rewrapped">How many data keys were rewrapped under the new provider.</param>
/// <param name="MasterKeyVersion">The new provider's master-key version that wraps them now.</param>
/// <param name="RetiredMasterKeysFile">
/// Where the old <c>master.keys</c> was moved when migrating away from the file provider (null otherwise). Keep it
/// with the backups made before the migration, off the server, and destroy it once none of them is needed.
/// </param>
public sealed record MasterKeyMigrationResult(int Rewrapped, int MasterKeyVersion, string? RetiredMasterKeysFile);

/// <summary>
/// Moves every data key from one master-key provider to another (docs/deploy.md "Moving to an HSM"): from
/// <c>master.keys</c> into a PKCS#11 token, or back. Offline: no server may use the database meanwhile.
/// </summary>
public static class MasterKeyMigration
{
    /// <summary>
    /// Unwraps every stored data key with the provider <paramref name="options"/> configures and wraps it with
    /// <paramref name="target"/>, in one database transaction that also records the target's version as the one that
    /// wraps and appends a <c>master-key.migrated</c> audit record; then, when the source was the file provider, moves <c>master.keys</c> aside so that a server can no
    /// longer use it. Either every key moves or none does.
    /// </summary>
    /// <param name="options">The server's configuration as it is now (data directory, database, current provider).</param>
    /// <param name="target">The provider to move to; its own keys are created when it has none.</param>
    /// <exception cref="ServerConfigurationException">Either configuration cannot work, both name the same provider, the data directory is in use, or the database cannot be opened.</exception>
    /// <exception cref="System.Security.Cryptography.CryptographicException">A stored key does not unwrap under the current provider (nothing is changed).</exception>
    public static MasterKeyMigrationResult Migrate(ServerOptions options, MasterKeyOptions target)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(target);
        ServerOptions settings = options.Copy();
        ServerOptionsValidator.Validate(settings);
        MasterKeyProviders.Validate(target);
        bool fromFile = IsFile(settings.MasterKey);
        bool toFile = IsFile(target);
        if (fromFile && toFile)
        {
            throw new ServerConfigurationException("The server already uses the file provider (master.keys); to move to an HSM, give the PKCS#11 provider as the target. To replace the file's keys, rotate instead.");
        }

        if (!fromFile && !toFile && string.Equals(settings.MasterKey.Pkcs11Module, target.Pkcs11Module, StringComparison.Ordinal)
            && string.Equals(settings.MasterKey.TokenLabel, target.TokenLabel, StringComparison.Ordinal) && string.Equals(settings.MasterKey.KeyLabel, target.KeyLabel, StringComparison.Ordinal))
        {
            throw new ServerConfigurationException("The source and the target are the same PKCS#11 token and key label; to replace the master key, rotate instead.");
        }

        DataDirectory data = DataDirectory.Open(settings.DataDirectory);
        using DirectoryLock directoryLock = data.Lock();
        if (toFile && File.Exists(data.MasterKeysPath))
        {
            throw new ServerConfigurationException($"'{data.MasterKeysPath}' already exists; move it away (it may be a retired file another migration left) before migrating the keys into a new one.");
        }

        using Store store = ServerHost.OpenStore(settings.Database, data, telemetry: null);
        bool hasKeys = store.Prepare();

        using MasterKeyRing from = MasterKeyProviders.Open(settings.MasterKey, data.MasterKeysPath, mayCreate: !hasKeys);
        using MasterKeyRing to = MasterKeyProviders.Open(target, data.MasterKeysPath, mayCreate: true);
        DateTimeOffset now = settings.Time.GetUtcNow();
        int rewrapped = store.WriteAsync(
            s =>
            {
                int count = MasterKeyRewrap.Rewrap(s, from, to);
                s.MasterKey.Record(to.CurrentVersion, now);
                s.Audit.Append(new AuditEntry(AuditEvents.MasterKeyMigrated, "ok", AuditEvents.Operator), now);
                return count;
            },
            CancellationToken.None).GetAwaiter().GetResult();

        string? retired = null;
        if (fromFile && File.Exists(data.MasterKeysPath))
        {
            retired = data.MasterKeysPath + "." + now.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture) + ".retired";
            File.Move(data.MasterKeysPath, retired);
        }

        return new MasterKeyMigrationResult(rewrapped, to.CurrentVersion, retired);
    }

    private static bool IsFile(MasterKeyOptions options) => string.Equals(options.Provider, MasterKeyOptions.File, StringComparison.OrdinalIgnoreCase);
}
