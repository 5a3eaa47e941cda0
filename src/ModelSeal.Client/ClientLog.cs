using Microsoft.Extensions.Logging;

namespace ModelSeal.Client;

/// <summary>The client's log messages: ids, thumbprints and reasons only, never tokens, credentials or keys.</summary>
internal static partial class ClientLog
{
    public const string Category = "ModelSeal.Client";

    [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "Token obtained for licence {LicenceId}, valid until {ExpiresAt}.")]
    public static partial void TokenObtained(ILogger logger, string licenceId, DateTimeOffset expiresAt);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Key {KeyId} of model {ModelId} version {Version} released online to device {Device}; lease until {LeaseExpiresAt}.")]
    public static partial void Released(ILogger logger, string modelId, string version, string keyId, string device, DateTimeOffset leaseExpiresAt);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Key server unavailable for model {ModelId} version {Version}; using the offline lease of key {KeyId} valid until {LeaseExpiresAt}.")]
    public static partial void UsingLease(ILogger logger, string modelId, string version, string keyId, DateTimeOffset leaseExpiresAt);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Key server refused key {KeyId} of model {ModelId} version {Version}: {Reason}; the cached lease was removed.")]
    public static partial void Refused(ILogger logger, string modelId, string version, string keyId, ModelKeyUnavailableReason reason);

    [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "Key server unavailable for model {ModelId} version {Version} and no usable lease of key {KeyId}: {Reason}.")]
    public static partial void NoLease(ILogger logger, string modelId, string version, string keyId, ModelKeyUnavailableReason reason);

    [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "The offline lease of key {KeyId} could not be stored ({ErrorType}); offline use will not be possible.")]
    public static partial void LeaseNotStored(ILogger logger, string keyId, string errorType);

    [LoggerMessage(EventId = 7, Level = LogLevel.Warning, Message = "The cached lease of key {KeyId} does not open with this device key; it was removed.")]
    public static partial void LeaseUnusable(ILogger logger, string keyId);

    [LoggerMessage(EventId = 8, Level = LogLevel.Error, Message = "The cached lease of key {KeyId} could not be removed ({ErrorType}); delete the lease directory to enforce the server's refusal offline.")]
    public static partial void LeaseNotRemoved(ILogger logger, string keyId, string errorType);

    [LoggerMessage(EventId = 9, Level = LogLevel.Debug, Message = "Sign-in token handed over by the app (forceRefresh {ForceRefresh}), valid until {ExpiresAt}.")]
    public static partial void SignInTokenReceived(ILogger logger, bool forceRefresh, DateTimeOffset expiresAt);

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "The sign-in token expires at {ExpiresAt} (within the refresh margin); asking the app for a new one (forceRefresh).")]
    public static partial void SignInTokenExpiring(ILogger logger, DateTimeOffset expiresAt);

    [LoggerMessage(EventId = 11, Level = LogLevel.Warning, Message = "The app handed over a sign-in token that expired at {ExpiresAt} even after forceRefresh; it is sent all the same and the key server decides (check the device clock and the app's sign-in).")]
    public static partial void SignInTokenStillExpired(ILogger logger, DateTimeOffset expiresAt);

    [LoggerMessage(EventId = 12, Level = LogLevel.Warning, Message = "The cached lease of key {KeyId} of model {ModelId} version {Version} was released to another user than the one signed in now; it is not used.")]
    public static partial void LeaseOfAnotherSubject(ILogger logger, string modelId, string version, string keyId);

}
