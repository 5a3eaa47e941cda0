using System.Buffers.Text;
using ModelSeal.Hpke;
using ModelSeal.Protocol;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Http;

/// <summary>The answer bodies (src/ModelSeal.Protocol, docs/protocol.md) made from the domain's records.</summary>
internal static class Contracts
{
    public static ModelItem ToItem(this ModelRecord model) =>
        new(model.ModelId, Rfc3339.Format(model.CreatedAt), model.Versions.Select(v => new VersionItem(v.Version, v.KeyId, v.State.Name(), Rfc3339.Format(v.CreatedAt))).ToList());

    public static LicenceResponse ToResponse(this LicenceRecord licence) =>
        new(licence.LicenceId, licence.Subject, licence.Models, Rfc3339.Format(licence.NotBefore), Rfc3339.Format(licence.ExpiresAt), licence.MaxDevices, Rfc3339.Format(licence.CreatedAt), Rfc3339.Format(licence.RevokedAt), ClaimName(licence.Claim), licence.Issuer, licence.AttestationPolicy);

    public static LicenceCreatedResponse ToResponse(this CreatedLicence created)
    {
        LicenceResponse l = created.Licence.ToResponse();
        return new(l.LicenceId, created.Credential, l.Subject, l.Models, l.NotBefore, l.ExpiresAt, l.MaxDevices, l.CreatedAt, l.RevokedAt, l.Claim, l.Issuer, l.AttestationPolicy);
    }

    public static DeviceItem ToItem(this DeviceRecord device) => new(device.Thumbprint, Rfc3339.Format(device.FirstSeen), Rfc3339.Format(device.LastSeen));

    public static UserItem ToItem(this UserRecord user) =>
        new(user.UserId, user.Issuer, user.Subject, Rfc3339.Format(user.CreatedAt), Rfc3339.Format(user.LastSeen), Rfc3339.Format(user.BlockedAt), user.Devices);

    public static UserDeviceItem ToItem(this UserDeviceRecord device) => new(device.Thumbprint, Rfc3339.Format(device.FirstSeen), Rfc3339.Format(device.LastSeen), device.Rule);

    public static UserDetailResponse ToResponse(this UserDetail detail) =>
        new(detail.User.ToItem(), [.. detail.Devices.Select(ToItem)], [.. detail.Releases.Select(ToItem)]);

    public static AuditItem ToItem(this AuditRecord r) =>
        new(r.Id, Rfc3339.Format(r.At), r.Entry.Event, r.Entry.Subject, r.Entry.LicenceId, r.Entry.ModelId, r.Entry.Version, r.Entry.KeyId, r.Entry.Device, r.Entry.Client, r.Entry.Outcome, r.Hash is null ? null : Base64Url.EncodeToString(r.Hash), r.Format, r.Entry.Issuer, r.Entry.Attributes);

    /// <summary>How a licence may be claimed, as the protocol names it.</summary>
    public static string ClaimName(LicenceClaim claim) => claim == LicenceClaim.Credential ? "credential" : "issuer-subject";
}
