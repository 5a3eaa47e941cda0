using System.Buffers.Text;
using ModelSeal.Hpke;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Storage;

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
internal sealed record ReleaseResponse(string ModelId, string Version, string KeyId, string Suite, string Enc, string SealedKey, string LeaseExpiresAt)
{
    public static ReleaseResponse From(ReleasedKey key) =>
        new(key.ModelId, key.Version, key.KeyId, KeyRelease.Suite, Base64Url.EncodeToString(key.Enc), Base64Url.EncodeToString(key.SealedKey), Rfc3339.Format(key.LeaseExpiresAt));
}

/// <summary><c>POST /v1/admin/models</c>.</summary>
internal sealed record CreateModelRequest(string? ModelId);

/// <summary>A created model.</summary>
internal sealed record ModelCreatedResponse(string ModelId, string CreatedAt);

/// <summary>A model with its versions.</summary>
internal sealed record ModelItem(string ModelId, string CreatedAt, IReadOnlyList<VersionItem> Versions)
{
    public static ModelItem From(ModelRecord model) =>
        new(model.ModelId, Rfc3339.Format(model.CreatedAt), model.Versions.Select(v => new VersionItem(v.Version, v.KeyId, v.State.Name(), Rfc3339.Format(v.CreatedAt))).ToList());
}

/// <summary>A model version (never its key).</summary>
internal sealed record VersionItem(string Version, string KeyId, string State, string CreatedAt);

/// <summary><c>POST /v1/admin/models/{modelId}/versions</c>.</summary>
internal sealed record CreateVersionRequest(string? Version, string? PublisherPublicKey);

/// <summary>The state of a version after a change.</summary>
internal sealed record StateResponse(string State);

/// <summary><c>POST /v1/admin/licences</c>.</summary>
internal sealed record CreateLicenceRequest(string? Subject, IReadOnlyList<string?>? Models, string? NotBefore, string? ExpiresAt, int? MaxDevices, string? Issuer);

/// <summary>A licence, without its credential; <c>claim</c> says how it may be claimed (<c>credential</c> or <c>issuer-subject</c>).</summary>
internal sealed record LicenceResponse(string LicenceId, string Subject, IReadOnlyList<string> Models, string? NotBefore, string? ExpiresAt, int MaxDevices, string CreatedAt, string? RevokedAt, string Claim, string? Issuer)
{
    public static LicenceResponse From(LicenceRecord licence) =>
        new(licence.LicenceId, licence.Subject, licence.Models, Rfc3339.Format(licence.NotBefore), Rfc3339.Format(licence.ExpiresAt), licence.MaxDevices, Rfc3339.Format(licence.CreatedAt), Rfc3339.Format(licence.RevokedAt), ClaimName(licence.Claim), licence.Issuer);

    public static string ClaimName(LicenceClaim claim) => claim == LicenceClaim.Credential ? "credential" : "issuer-subject";
}

/// <summary>A new licence with its credential (shown only here; null for a licence claimed by issuer and subject).</summary>
internal sealed record LicenceCreatedResponse(string LicenceId, string? Credential, string Subject, IReadOnlyList<string> Models, string? NotBefore, string? ExpiresAt, int MaxDevices, string CreatedAt, string? RevokedAt, string Claim, string? Issuer)
{
    public static LicenceCreatedResponse From(CreatedLicence created)
    {
        LicenceResponse l = LicenceResponse.From(created.Licence);
        return new(l.LicenceId, created.Credential, l.Subject, l.Models, l.NotBefore, l.ExpiresAt, l.MaxDevices, l.CreatedAt, l.RevokedAt, l.Claim, l.Issuer);
    }
}

/// <summary>A device registered for a licence.</summary>
internal sealed record DeviceItem(string Thumbprint, string FirstSeen, string LastSeen);

/// <summary>A list answer.</summary>
internal sealed record ItemsResponse<T>(IReadOnlyList<T> Items);

/// <summary>The answer of a master key rotation.</summary>
internal sealed record RotateResponse(int MasterKeyVersion, int Rewrapped);

/// <summary>An audit record (docs/protocol.md section 4): its fields, its encoding format and its link in the hash chain.</summary>
internal sealed record AuditItem(long Id, string At, string Event, string? Subject, string? LicenceId, string? ModelId, string? Version, string? KeyId, string? Device, string? Client, string Outcome, string? Hash, int Format, string? Issuer, IReadOnlyDictionary<string, string>? Attributes)
{
    public static AuditItem From(AuditRecord r) =>
        new(r.Id, Rfc3339.Format(r.At), r.Entry.Event, r.Entry.Subject, r.Entry.LicenceId, r.Entry.ModelId, r.Entry.Version, r.Entry.KeyId, r.Entry.Device, r.Entry.Client, r.Entry.Outcome, r.Hash is null ? null : Base64Url.EncodeToString(r.Hash), r.Format, r.Entry.Issuer, r.Entry.Attributes);
}

/// <summary>A page of audit records.</summary>
internal sealed record AuditPage(IReadOnlyList<AuditItem> Items, long? Next);

/// <summary>
/// The result of <c>GET /v1/admin/audit/verify</c> (docs/protocol.md section 4.1): <c>records</c> and <c>lastHash</c>
/// describe the longest intact prefix of the log (all of it when verified).
/// </summary>
internal sealed record AuditVerifyResponse(bool Verified, long Records, long? LastId, string LastHash, long? FirstBadId, string? Reason);

/// <summary>A health answer.</summary>
internal sealed record HealthResponse(string Status);
