using System.Globalization;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server;

/// <summary>What <see cref="DatabaseMigration.Migrate"/> did.</summary>
/// <param name="Models">Models copied.</param>
/// <param name="Versions">Model versions copied (wrapped keys as they were: the master keys do not change).</param>
/// <param name="Licences">Licences copied.</param>
/// <param name="Devices">Devices of licences copied.</param>
/// <param name="Users">Users (of entitlement rules) copied, ids unchanged.</param>
/// <param name="UserDevices">Devices of users copied.</param>
/// <param name="AuditRecords">Audit records copied, ids and hashes unchanged (a <c>database.migrated</c> record follows them).</param>
/// <param name="RetiredDatabaseFile">Where the SQLite database was moved, so that no server uses it again.</param>
public sealed record DatabaseMigrationResult(int Models, int Versions, int Licences, int Devices, int Users, int UserDevices, int AuditRecords, string RetiredDatabaseFile)
{
    /// <summary>Accepted device attestations copied (issued attestation challenges are not: they are short-lived).</summary>
    public int DeviceAttestations { get; init; }
}

/// <summary>
/// Moves a key server from the embedded SQLite database to PostgreSQL (docs/deploy.md "Moving to PostgreSQL"), offline:
/// every row, in one PostgreSQL transaction, the audit chain checked to continue unchanged.
/// </summary>
public static class DatabaseMigration
{
    /// <summary>
    /// Copies everything in the data directory's <c>modelseal.db</c> into the empty PostgreSQL database
    /// <paramref name="target"/> names, appends a <c>database.migrated</c> audit record there, verifies that the copied
    /// audit chain has the same head as the original, and moves <c>modelseal.db</c> aside.
    /// </summary>
    /// <param name="options">The server's configuration as it is now (its data directory; the SQLite database).</param>
    /// <param name="target">The PostgreSQL database to move to; its tables must be empty (they are created when absent).</param>
    /// <exception cref="ServerConfigurationException">The source is not SQLite, the target not PostgreSQL or not empty, the data directory is in use, a database cannot be opened, or the copy does not verify (then nothing is committed).</exception>
    public static DatabaseMigrationResult Migrate(ServerOptions options, DatabaseOptions target)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(target);
        ServerOptions settings = options.Copy();
        ServerOptionsValidator.Validate(settings);
        ServerOptionsValidator.ValidateDatabase(target);
        if (settings.Database.Provider != DatabaseOptions.Sqlite || target.Provider != DatabaseOptions.Postgres)
        {
            throw new ServerConfigurationException("A database is moved from the embedded SQLite database (modelseal.db) to PostgreSQL: the server's current Database:Provider must be 'sqlite' and the target's 'postgres'.");
        }

        DataDirectory data = DataDirectory.Open(settings.DataDirectory);
        using DirectoryLock directoryLock = data.Lock();
        if (!File.Exists(data.DatabasePath))
        {
            throw new ServerConfigurationException($"There is no database '{data.DatabasePath}' to move (a data directory whose database was moved already keeps only the retired file).");
        }

        StoreSnapshot snapshot;
        AuditVerification head;
        using (Store source = ServerHost.OpenStore(settings.Database, data, telemetry: null))
        {
            source.Prepare();
            (snapshot, head) = source.Read(s => (s.Snapshot.Export(), s.Audit.Verify(null, null)));
        }

        if (!head.Verified)
        {
            throw new ServerConfigurationException($"The audit log of '{data.DatabasePath}' does not verify ({head.Reason}); investigate before moving it.");
        }

        using (Store destination = ServerHost.OpenStore(target, data, telemetry: null))
        {
            destination.Prepare();
            DateTimeOffset now = settings.Time.GetUtcNow();
            destination.WriteAsync(
                s =>
                {
                    if (!s.Snapshot.IsEmpty())
                    {
                        throw new ServerConfigurationException($"The {destination.Description} already holds models, licences, users or audit records; move into an empty database (or schema).");
                    }

                    destination.Import(s, snapshot);

                    // The copy must continue the original chain exactly; otherwise the transaction rolls back.
                    AuditVerification copied = s.Audit.Verify(head.Records, head.LastHash);
                    if (!copied.Verified)
                    {
                        throw new ServerConfigurationException($"The copied audit log does not verify ({copied.Reason}); nothing was committed.");
                    }

                    s.Audit.Append(new AuditEntry(AuditEvents.DatabaseMigrated, "ok", AuditEvents.Operator), now);
                    return 0;
                },
                CancellationToken.None).GetAwaiter().GetResult();
        }

        string retired = data.DatabasePath + "." + DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture) + ".migrated";
        File.Move(data.DatabasePath, retired);
        foreach (string suffix in new[] { "-wal", "-shm" })
        {
            if (File.Exists(data.DatabasePath + suffix))
            {
                File.Move(data.DatabasePath + suffix, retired + suffix);
            }
        }

        return new DatabaseMigrationResult(snapshot.Models.Count, snapshot.Versions.Count, snapshot.Licences.Count, snapshot.Devices.Count, snapshot.Users?.Count ?? 0, snapshot.UserDevices?.Count ?? 0, snapshot.Audit.Count, retired)
        {
            DeviceAttestations = snapshot.DeviceAttestations?.Count ?? 0,
        };
    }
}
