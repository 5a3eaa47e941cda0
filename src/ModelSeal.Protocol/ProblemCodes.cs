namespace ModelSeal.Protocol;

/// <summary>
/// The problem codes of docs/protocol.md section 6. An error answer's <c>type</c> is <see cref="TypePrefix"/> followed by
/// the code; the server's table (ModelSeal.Server.Http.Problems) gives each its status and title.
/// </summary>
internal static class ProblemCodes
{
    public const string TypePrefix = "https://modelseal.dev/problems/";

    public const string InvalidRequest = "invalid-request";
    public const string Unauthorized = "unauthorized";
    public const string Forbidden = "forbidden";
    public const string RequestTooLarge = "request-too-large";
    public const string UriTooLong = "uri-too-long";
    public const string HeaderFieldsTooLarge = "request-header-fields-too-large";
    public const string RateLimited = "rate-limited";
    public const string NotReady = "not-ready";
    public const string NotFound = "not-found";
    public const string MethodNotAllowed = "method-not-allowed";
    public const string UnsupportedMediaType = "unsupported-media-type";
    public const string InternalError = "internal-error";
    public const string UnsupportedProtocolVersion = "unsupported-protocol-version";
    public const string InvalidDeviceKey = "invalid-device-key";
    public const string LicenceRevoked = "licence-revoked";
    public const string LicenceExpired = "licence-expired";
    public const string LicenceNotYetValid = "licence-not-yet-valid";
    public const string ModelNotLicensed = "model-not-licensed";
    public const string VersionDisabled = "version-disabled";
    public const string DeviceLimit = "device-limit";
    public const string ModelNotFound = "model-not-found";
    public const string VersionNotFound = "version-not-found";
    public const string LicenceNotFound = "licence-not-found";
    public const string ModelExists = "model-exists";
    public const string VersionExists = "version-exists";
    public const string VersionDestroyed = "version-destroyed";
    public const string AuditUnavailable = "audit-unavailable";
    public const string DeviceNotFound = "device-not-found";
    public const string VersionsNotDestroyed = "versions-not-destroyed";
    public const string NoEntitlement = "no-entitlement";
    public const string UserBlocked = "user-blocked";
    public const string UserNotFound = "user-not-found";
    public const string AttestationRejected = "attestation-rejected";

    /// <summary>The code of a problem <c>type</c>, or null when it is not one of ModelSeal's.</summary>
    public static string? FromType(string? type) =>
        type is not null && type.StartsWith(TypePrefix, StringComparison.Ordinal) && type.Length > TypePrefix.Length ? type[TypePrefix.Length..] : null;
}
