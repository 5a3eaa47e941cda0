using Microsoft.Extensions.Logging;

namespace ModelSeal.Server.MasterKeys;

/// <summary>
/// Log messages about where the server's keys are (master-key versions, signing keys); category
/// <see cref="Diagnostics.ServerLog.Category"/>, event ids 70–79.
/// </summary>
internal static partial class KeyStoreLog
{
    [LoggerMessage(70, LogLevel.Warning, "The master keys ({Provider}) hold v{Latest}, above v{Recorded}, the version the database records: v{Latest} is ignored (never wraps); if no rotation put it there, someone else did. Rotate to replace it.")]
    public static partial void VersionIgnored(ILogger logger, string provider, int latest, int recorded);

    [LoggerMessage(71, LogLevel.Warning, "The database recorded no master-key version (a database of an older server): recorded v{Version}, the latest of {Provider}.")]
    public static partial void VersionAdopted(ILogger logger, int version, string provider);

    [LoggerMessage(72, LogLevel.Information, "Master key v{Version} is current: another instance recorded it in the database.")]
    public static partial void VersionFollowed(ILogger logger, int version);

    [LoggerMessage(73, LogLevel.Warning, "The database records master key v{Recorded}, which {Provider} no longer holds, and no data key is stored: recorded v{Version} instead.")]
    public static partial void VersionReplaced(ILogger logger, int recorded, string provider, int version);

    [LoggerMessage(74, LogLevel.Information, "The {Purpose} signing key is {Description}, key id {KeyId}.")]
    public static partial void SigningKeyOpened(ILogger logger, string purpose, string description, string keyId);

    [LoggerMessage(75, LogLevel.Warning, "Deleted {Path}: with PKCS#11 the {Purpose} signing key lives in the token; the file key is no longer used (tokens it signed are no longer accepted).")]
    public static partial void SigningKeyFileDeleted(ILogger logger, string path, string purpose);
}
