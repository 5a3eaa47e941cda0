using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.Files;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Security;

/// <summary>
/// The admin credential (docs/deploy.md "Admin credential"): only its hash and its epoch are kept, in the database
/// (<see cref="AdminCredentialRecord"/>); the credential itself is written once, to a file outside the data directory,
/// at first start (<see cref="ServerOptions.AdminCredentialOut"/>) and at each rotation. Both are read from the database
/// at each use, so a rotation by another instance or by <c>modelseal admin-credential rotate</c> takes effect at once.
/// </summary>
internal sealed class AdminCredential(Store store)
{
    /// <summary>True when <paramref name="credential"/> is the current admin credential; <paramref name="epoch"/> is the current epoch.</summary>
    public bool Matches(string credential, out long epoch)
    {
        AdminCredentialRecord? current = store.Read(s => s.AdminCredential.Get());
        epoch = current?.Epoch ?? 0;
        return Credentials.Matches(credential, current?.Hash);
    }

    /// <summary>The current epoch (0 when there is no admin credential, which no admin token carries).</summary>
    public long CurrentEpoch() => store.Read(s => s.AdminCredential.Get())?.Epoch ?? 0;

    /// <summary>
    /// At start: makes sure the database holds an admin credential. An <c>admin.credential</c> file left in the data
    /// directory by an older server is hashed into the database and deleted (the credential stays the same). At first
    /// start a new credential is written to <see cref="ServerOptions.AdminCredentialOut"/> and its hash stored; without
    /// that option the server refuses to start.
    /// </summary>
    /// <exception cref="ServerConfigurationException">First start without AdminCredentialOut, an unusable output file, or a stale admin.credential.</exception>
    public static void Establish(Store store, DataDirectory data, ServerOptions options, ILogger logger)
    {
        DateTimeOffset now = options.Time.GetUtcNow();
        if (File.Exists(data.AdminCredentialPath))
        {
            byte[] hash = ReadLegacyFile(data.AdminCredentialPath);
            bool stored = Write(store, s => s.AdminCredential.InsertFirst(hash, now));
            AdminCredentialRecord current = store.Read(s => s.AdminCredential.Get())!;
            if (!stored && !CryptographicOperations.FixedTimeEquals(current.Hash, hash))
            {
                throw new ServerConfigurationException($"The data directory holds '{data.AdminCredentialPath}', but the database holds another admin credential (rotated, or created by another instance); the file is no longer used: delete it.");
            }

            File.Delete(data.AdminCredentialPath);
            ServerLog.AdminCredentialImported(logger, data.AdminCredentialPath);
            return;
        }

        if (store.Read(s => s.AdminCredential.Get()) is not null)
        {
            return;
        }

        if (string.IsNullOrWhiteSpace(options.AdminCredentialOut))
        {
            throw new ServerConfigurationException("This is the server's first start (the database holds no admin credential): pass --admin-credential-out FILE (AdminCredentialOut), a path outside the data directory, and the server writes the new admin credential there once, owner-only; only its hash is kept.");
        }

        string written = WriteCredential(options.AdminCredentialOut, data, out byte[] newHash);
        bool created;
        try
        {
            created = Write(store, s => s.AdminCredential.InsertFirst(newHash, now));
        }
        catch
        {
            File.Delete(written);
            throw;
        }

        if (!created)
        {
            // Another instance sharing the database stored its credential first: that one holds, this file does not.
            File.Delete(written);
            return;
        }

        ServerLog.AdminCredentialCreated(logger, written);
    }

    /// <summary>
    /// Writes a new admin credential to <paramref name="outFile"/>, stores its hash, moves to the next epoch (every
    /// admin token issued before is refused from then on) and audits <c>admin.credential-rotated</c>, in one write
    /// transaction; deletes a left-over <c>admin.credential</c> of the data directory. Returns the new epoch.
    /// </summary>
    public static long Rotate(Store store, DataDirectory data, string outFile, DateTimeOffset now)
    {
        string written = WriteCredential(outFile, data, out byte[] hash);
        long epoch;
        try
        {
            epoch = Write(store, s =>
            {
                long next = s.AdminCredential.Rotate(hash, now);
                s.Audit.Append(new AuditEntry(AuditEvents.AdminCredentialRotated, "ok", AuditEvents.Operator, Attributes: new Dictionary<string, string> { ["epoch"] = next.ToString(System.Globalization.CultureInfo.InvariantCulture) }), now);
                return next;
            });
        }
        catch
        {
            File.Delete(written);
            throw;
        }

        if (File.Exists(data.AdminCredentialPath))
        {
            File.Delete(data.AdminCredentialPath);
        }

        return epoch;
    }

    private static string WriteCredential(string outFile, DataDirectory data, out byte[] hash)
    {
        ServerOptionsValidator.RequireOutsideDataDirectory(outFile, data.Path, "The admin credential output file");
        string path = Path.GetFullPath(outFile);
        string credential = Credentials.New();
        hash = Credentials.Hash(credential);
        byte[] text = Encoding.ASCII.GetBytes(credential + "\n");
        try
        {
            DataDirectory.WriteSecretFile(path, text, overwrite: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ServerConfigurationException($"The admin credential could not be written to '{path}': {e.Message} (it is never overwritten: give a new path, in an existing directory).", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(text);
        }

        return path;
    }

    private static byte[] ReadLegacyFile(string path)
    {
        byte[] content = DataDirectory.ReadSecretFile(path);
        try
        {
            string credential = Encoding.UTF8.GetString(content).Trim(' ', '\t', '\r', '\n');
            if (credential.Length < 16)
            {
                throw new ServerConfigurationException($"The admin credential file '{path}' is empty or too short (at least 16 characters); delete it, and make a new credential with 'modelseal admin-credential rotate --out FILE'.");
            }

            return Credentials.Hash(credential);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(content);
        }
    }

    private static T Write<T>(Store store, Func<WriteSession, T> work) => store.WriteAsync(work, CancellationToken.None).GetAwaiter().GetResult();
}
