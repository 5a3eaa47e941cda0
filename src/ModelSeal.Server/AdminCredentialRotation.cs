using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;
using ModelSeal.Server.Security;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server;

/// <summary>What <see cref="AdminCredentialRotation.Rotate"/> did.</summary>
/// <param name="CredentialFile">Where the new admin credential was written (owner-only, outside the data directory).</param>
/// <param name="Epoch">The new admin epoch: admin tokens of earlier epochs are refused from now on.</param>
public sealed record AdminCredentialRotationResult(string CredentialFile, long Epoch);

/// <summary>
/// Makes a new admin credential (docs/deploy.md "Admin credential"), offline on the server's data directory and
/// database, like the other operator commands: an admin token (which is what a copied token-signing key can mint) cannot
/// rotate it and lock the operator out.
/// </summary>
public static class AdminCredentialRotation
{
    /// <summary>
    /// Writes a new admin credential to <paramref name="outFile"/> (a new, owner-only file outside the data directory),
    /// stores its hash in place of the old one and moves to the next admin epoch, so that every admin token issued
    /// before is refused (by every instance sharing the database, at its next request); audits
    /// <c>admin.credential-rotated</c>. Takes the data directory's lock: with SQLite, stop the server first.
    /// </summary>
    /// <exception cref="ServerConfigurationException">The data directory is in use, the database cannot be opened, or the output file is inside the data directory, exists or cannot be written.</exception>
    public static AdminCredentialRotationResult Rotate(ServerOptions options, string outFile)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(outFile);
        ServerOptions settings = options.Copy();
        ServerOptionsValidator.Validate(settings);
        ServerOptionsValidator.RequireOutsideDataDirectory(outFile, settings.DataDirectory, "The admin credential output file");
        DataDirectory data = DataDirectory.Open(settings.DataDirectory);
        using DirectoryLock directoryLock = data.Lock();
        using Store store = ServerHost.OpenStore(settings.Database, data, telemetry: null);
        store.Prepare();
        long epoch = AdminCredential.Rotate(store, data, outFile, settings.Time.GetUtcNow());
        return new AdminCredentialRotationResult(Path.GetFullPath(outFile), epoch);
    }
}
