using Microsoft.Extensions.Logging;

namespace ModelSeal.Server.Diagnostics;

/// <summary>
/// Everything the server logs. Ids, thumbprints and outcomes only: never key material, credentials or tokens.
/// </summary>
internal static partial class ServerLog
{
    public const string Category = "ModelSeal.Server";

    [LoggerMessage(1, LogLevel.Information, "Key server data directory {DataDirectory}: master key v{MasterKeyVersion}, token key id {TokenKeyId}, answer key id {AnswerKeyId} (clients pin this one).")]
    public static partial void Started(ILogger logger, string dataDirectory, int masterKeyVersion, string tokenKeyId, string answerKeyId);

    [LoggerMessage(2, LogLevel.Warning, "Wrote the new admin credential to {Path} (owner-only); only its hash is kept, in the database. Move it to your secret store.")]
    public static partial void AdminCredentialCreated(ILogger logger, string path);

    [LoggerMessage(4, LogLevel.Warning, "Moved the admin credential of {Path} into the database (its hash only) and deleted the file; the credential is unchanged.")]
    public static partial void AdminCredentialImported(ILogger logger, string path);

    [LoggerMessage(3, LogLevel.Information, "Accepting tokens of the trusted issuer {Issuer} ({KeyCount} keys from {JwksFile}; {AdminSubjectCount} admin subjects).")]
    public static partial void TrustedIssuerConfigured(ILogger logger, string issuer, int keyCount, string jwksFile, int adminSubjectCount);

    [LoggerMessage(10, LogLevel.Information, "Key released: licence {LicenceId}, key {KeyId}, device {Device}.")]
    public static partial void KeyReleased(ILogger logger, string licenceId, string keyId, string device);

    [LoggerMessage(11, LogLevel.Information, "Key release refused ({Outcome}): licence {LicenceId}, model {ModelId}, version {Version}, device {Device}.")]
    public static partial void KeyRefused(ILogger logger, string outcome, string? licenceId, string? modelId, string? version, string? device);

    [LoggerMessage(12, LogLevel.Error, "The audit log could not be written ({ErrorType}, {ErrorCode}); no key was released.")]
    public static partial void AuditUnavailable(ILogger logger, string errorType, string errorCode);

    [LoggerMessage(13, LogLevel.Warning, "A refusal could not be recorded in the audit log ({ErrorType}).")]
    public static partial void RefusalNotAudited(ILogger logger, string errorType);

    [LoggerMessage(14, LogLevel.Information, "Audit checkpoint signed: {Records} records up to record {LastId}, answer key {KeyId}.")]
    public static partial void CheckpointWritten(ILogger logger, long records, long lastId, string keyId);

    [LoggerMessage(16, LogLevel.Warning, "The answer key changed from {OldKeyId} to {NewKeyId}: the audit checkpoints up to record {LastId} were signed by the old key, which verify no longer checks; the head is checkpointed with the new key now. Keep the old JWKS to check the earlier checkpoints.")]
    public static partial void CheckpointKeyChanged(ILogger logger, string oldKeyId, string newKeyId, long lastId);

    [LoggerMessage(15, LogLevel.Warning, "The audit pass failed ({ErrorType}); the next one tries again.")]
    public static partial void AuditPassFailed(ILogger logger, string errorType);

    [LoggerMessage(20, LogLevel.Information, "Token issued: grant {GrantType}, licence {LicenceId}.")]
    public static partial void TokenIssued(ILogger logger, string grantType, string? licenceId);

    [LoggerMessage(21, LogLevel.Warning, "Token refused: grant {GrantType}, licence {LicenceId}, wrong or unknown credential.")]
    public static partial void TokenRefused(ILogger logger, string grantType, string? licenceId);

    [LoggerMessage(25, LogLevel.Warning, "Token refused: grant licence, licence {LicenceId}, {Outcome}.")]
    public static partial void LicenceTokenRefused(ILogger logger, string licenceId, string outcome);

    [LoggerMessage(22, LogLevel.Information, "Bearer token rejected: {Reason}.")]
    public static partial void TokenRejected(ILogger logger, string reason);

    [LoggerMessage(30, LogLevel.Information, "Admin {Subject}: {Event} {Target}.")]
    public static partial void AdminChange(ILogger logger, string subject, string @event, string target);

    [LoggerMessage(31, LogLevel.Information, "Master key rotated to v{MasterKeyVersion}; {Rewrapped} data keys rewrapped.")]
    public static partial void MasterKeyRotated(ILogger logger, int masterKeyVersion, int rewrapped);

    [LoggerMessage(40, LogLevel.Warning, "Readiness check failed: {ErrorType}.")]
    public static partial void NotReady(ILogger logger, string errorType);

    [LoggerMessage(41, LogLevel.Warning, "WAL checkpoint after destroying a key did not complete: {ErrorType}.")]
    public static partial void CheckpointFailed(ILogger logger, string errorType);

    [LoggerMessage(80, LogLevel.Information, "Accepting tokens of the trusted issuer {Issuer}, keys discovered from {MetadataAddress} (fetched again every {AutomaticRefreshInterval}, and for an unknown kid at most once per {MinimumRefreshInterval}; {AdminSubjectCount} admin subjects).")]
    public static partial void TrustedIssuerDiscovered(ILogger logger, string issuer, string metadataAddress, TimeSpan automaticRefreshInterval, TimeSpan minimumRefreshInterval, int adminSubjectCount);

    [LoggerMessage(81, LogLevel.Information, "Trusted issuer {Issuer}: {KeyCount} signing keys in use, kid {KeyIds} ({Reason}).")]
    public static partial void IssuerKeysFetched(ILogger logger, string issuer, int keyCount, string keyIds, string reason);

    [LoggerMessage(82, LogLevel.Warning, "Trusted issuer {Issuer} has no keys yet: fetching {MetadataAddress} failed ({Reason}): {Error}. Its tokens get 401 and /health/ready answers 503 until a fetch succeeds; retrying.")]
    public static partial void IssuerKeysUnavailable(ILogger logger, string issuer, string metadataAddress, string reason, string error);

    [LoggerMessage(83, LogLevel.Warning, "Trusted issuer {Issuer}: fetching {MetadataAddress} again failed ({Reason}): {Error}. The {KeyCount} keys fetched before stay in use; retrying.")]
    public static partial void IssuerRefreshFailed(ILogger logger, string issuer, string metadataAddress, string reason, string error, int keyCount);

    [LoggerMessage(84, LogLevel.Warning, "Token of the trusted issuer {Issuer} refused: it names the signing key kid {Kid}, which the issuer does not publish (a new fetch of the issuer's keys was tried for it: {Refreshed}; at most once per MinimumRefreshInterval). A key rotated in but not yet published, or a forged token.")]
    public static partial void UnknownSigningKey(ILogger logger, string issuer, string kid, bool refreshed);

    [LoggerMessage(86, LogLevel.Warning, "Token of the trusted issuer {Issuer} refused: the issuer publishes its signing key kid {Kid}, but for an algorithm or key type not among this issuer's Algorithms (TrustedIssuers:n:Algorithms). List the algorithm if the issuer should be trusted with it.")]
    public static partial void UnusableSigningKey(ILogger logger, string issuer, string kid);

    [LoggerMessage(85, LogLevel.Warning, "Token of the trusted issuer {Issuer} refused: its keys have not been fetched yet from {MetadataAddress} (see the earlier warning).")]
    public static partial void IssuerKeysNotFetched(ILogger logger, string issuer, string metadataAddress);

    [LoggerMessage(90, LogLevel.Information, "Entitlement rules in force: {RuleCount} from {File}.")]
    public static partial void EntitlementRulesLoaded(ILogger logger, int ruleCount, string file);

    [LoggerMessage(91, LogLevel.Error, "The entitlement rule file {File} was not applied: {Reason} The {RuleCount} rules in force stay; fix the file.")]
    public static partial void EntitlementRulesRefused(ILogger logger, string file, string reason, int ruleCount);

    [LoggerMessage(92, LogLevel.Information, "Key released under rule {Rule}: user {UserId}, key {KeyId}, device {Device}.")]
    public static partial void KeyReleasedByRule(ILogger logger, string rule, long userId, string keyId, string device);

    [LoggerMessage(93, LogLevel.Warning, "Attestation evidence of device {Device} refused ({Reason}): {Detail}")]
    public static partial void AttestationRefused(ILogger logger, string? device, string reason, string detail);

    [LoggerMessage(94, LogLevel.Error, "A grant names the attestation policy {Policy}, which is not configured (Attestation:Policies): its releases are refused (policy-unknown). Configure the policy, or change the licence or rule.")]
    public static partial void AttestationPolicyUnknown(ILogger logger, string policy);

    [LoggerMessage(95, LogLevel.Information, "Attestations re-verified: {Checked} checked, {Rejected} newly rejected.")]
    public static partial void AttestationsReverified(ILogger logger, int @checked, int rejected);

    [LoggerMessage(96, LogLevel.Error, "Attestation re-verification failed ({ErrorType}): {Reason} The status list in force stays; retrying at the next interval.")]
    public static partial void AttestationReverifyFailed(ILogger logger, string errorType, string reason);
}
