using System.Globalization;

namespace ModelSeal.Server.Http;

// Request and answer bodies of docs/protocol.md. Request members are nullable so that a missing field is reported
// by name (400 invalid-request with "errors") instead of failing deserialisation as a whole.

/// <summary><c>POST /v1/token</c>.</summary>
internal sealed record TokenRequest(string? GrantType, string? LicenceId, string? Credential);

/// <summary>A token answer.</summary>
internal sealed record TokenResponse(string AccessToken, string TokenType, int ExpiresIn);

/// <summary><c>POST /v1/keys/release</c>.</summary>
internal sealed record ReleaseRequest(string? ModelId, string? Version, string? DevicePublicKey);

/// <summary>A release answer: the data key sealed with HPKE to the requester's public key.</summary>
internal sealed record ReleaseResponse(string ModelId, string Version, string KeyId, string Suite, string Enc, string SealedKey, string LeaseExpiresAt);

/// <summary><c>POST /v1/admin/models</c>.</summary>
internal sealed record CreateModelRequest(string? ModelId);

/// <summary>A created model.</summary>
internal sealed record ModelCreatedResponse(string ModelId, string CreatedAt);

/// <summary>A model with its versions.</summary>
internal sealed record ModelItem(string ModelId, string CreatedAt, IReadOnlyList<VersionItem> Versions);

/// <summary>A model version (never its key).</summary>
internal sealed record VersionItem(string Version, string KeyId, string State, string CreatedAt);

/// <summary><c>POST /v1/admin/models/{modelId}/versions</c>.</summary>
internal sealed record CreateVersionRequest(string? Version, string? PublisherPublicKey);

/// <summary>The state of a version after a change.</summary>
internal sealed record StateResponse(string State);

/// <summary><c>POST /v1/admin/licences</c>.</summary>
internal sealed record CreateLicenceRequest(string? Subject, IReadOnlyList<string?>? Models, string? NotBefore, string? ExpiresAt, int? MaxDevices);

/// <summary>A licence, without its credential.</summary>
internal sealed record LicenceResponse(string LicenceId, string Subject, IReadOnlyList<string> Models, string? NotBefore, string? ExpiresAt, int MaxDevices, string CreatedAt, string? RevokedAt);

/// <summary>A new licence with its credential (shown only here).</summary>
internal sealed record LicenceCreatedResponse(string LicenceId, string Credential, string Subject, IReadOnlyList<string> Models, string? NotBefore, string? ExpiresAt, int MaxDevices, string CreatedAt, string? RevokedAt);

/// <summary>A device registered for a licence.</summary>
internal sealed record DeviceItem(string Thumbprint, string FirstSeen, string LastSeen);

/// <summary>A list answer.</summary>
internal sealed record ItemsResponse<T>(IReadOnlyList<T> Items);

/// <summary>The answer of a master key rotation.</summary>
internal sealed record RotateResponse(int MasterKeyVersion, int Rewrapped);

/// <summary>An audit record (docs/protocol.md section 4).</summary>
internal sealed record AuditItem(long Id, string At, string Event, string? Subject, string? LicenceId, string? ModelId, string? Version, string? KeyId, string? Device, string? Client, string Outcome, string? Hash);

/// <summary>A page of audit records.</summary>
internal sealed record AuditPage(IReadOnlyList<AuditItem> Items, long? Next);

/// <summary>
/// The result of <c>GET /v1/admin/audit/verify</c> (docs/protocol.md section 4.1): <c>records</c> and <c>lastHash</c>
/// describe the longest intact prefix of the log (all of it when verified).
/// </summary>
internal sealed record AuditVerifyResponse(bool Verified, long Records, long? LastId, string LastHash, long? FirstBadId, string? Reason);

/// <summary>A health answer.</summary>
internal sealed record HealthResponse(string Status);

/// <summary>RFC 3339 UTC times, whole seconds.</summary>
internal static class Rfc3339
{
    public static string Format(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    public static string? Format(DateTimeOffset? time) => time is { } t ? Format(t) : null;

    /// <summary>Parses an RFC 3339 date-time with an explicit offset (<c>Z</c> or <c>±hh:mm</c>), truncated to seconds.</summary>
    public static bool TryParse(string? text, out DateTimeOffset time)
    {
        time = default;
        if (text is null || text.Length < 20 || (text[10] != 'T' && text[10] != 't'))
        {
            return false;
        }

        bool hasOffset = text[^1] is 'Z' or 'z' || (text.Length >= 25 && text[^6] is '+' or '-' && text[^3] == ':');
        if (!hasOffset || !DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal, out DateTimeOffset parsed))
        {
            return false;
        }

        time = DateTimeOffset.FromUnixTimeSeconds(parsed.ToUnixTimeSeconds());
        return true;
    }
}
