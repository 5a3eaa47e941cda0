using System.Globalization;
using Microsoft.Extensions.Logging;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Domain;

/// <summary>A user with its devices and its latest key releases and refusals (newest first).</summary>
internal sealed record UserDetail(UserRecord User, IReadOnlyList<UserDeviceRecord> Devices, IReadOnlyList<AuditRecord> Releases);

/// <summary>A page of users; <c>Next</c> is the <c>after</c> of the next page (null at the end).</summary>
internal sealed record UserPage(IReadOnlyList<UserRecord> Items, long? Next);

/// <summary>
/// The users entitlement rules granted keys to (docs/protocol.md section 3): listed, shown, blocked and unblocked, and
/// their devices removed. Every change is audited, with the user's id, issuer and subject as attributes.
/// </summary>
internal sealed class Users(Store store, Clock clock, ILogger<Users> logger)
{
    public const int MaxPage = 500;
    public const int LatestReleases = 20;
    public const string UserBlocked = "user.blocked";
    public const string UserUnblocked = "user.unblocked";
    public const string UserDeviceRemoved = "user.device-removed";

    public UserPage List(long after, int limit, string? issuer, string? subject)
    {
        List<UserRecord> users = store.Read(s => s.Users.List(after, limit + 1, issuer, subject));
        bool more = users.Count > limit;
        if (more)
        {
            users.RemoveAt(users.Count - 1);
        }

        return new UserPage(users, more ? users[^1].UserId : null);
    }

    public Outcome<UserDetail> Show(long userId)
    {
        UserDetail? detail = store.Read(s => s.Users.Get(userId) is { } user
            ? new UserDetail(user, s.Users.Devices(userId), s.Audit.LatestOf(user.Issuer, user.Subject, LatestReleases))
            : null);
        return detail is null ? NotFound : detail;
    }

    /// <summary>
    /// Blocks (<paramref name="block"/>) or unblocks a user; idempotent (no change, no record). A blocked user is refused
    /// at its next release (<c>403 user-blocked</c>, signed: the client drops its lease).
    /// </summary>
    public async Task<Outcome<UserRecord>> SetBlockedAsync(Caller admin, long userId, bool block, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(admin);
        DateTimeOffset now = clock.Now();
        string auditEvent = block ? UserBlocked : UserUnblocked;
        (UserRecord? user, bool changed) = await store.WriteAsync<(UserRecord?, bool)>(
            s =>
            {
                UserRecord? existing = s.Users.Get(userId);
                if (existing is null || (existing.BlockedAt is not null) == block)
                {
                    return (existing, false);
                }

                s.Users.SetBlocked(userId, block ? now : null);
                s.Audit.Append(ModelCatalogue.Change(admin, auditEvent) with { Attributes = Attributes(existing) }, now);
                return (existing with { BlockedAt = block ? DateTimeOffset.FromUnixTimeSeconds(now.ToUnixTimeSeconds()) : null }, true);
            },
            cancellationToken).ConfigureAwait(false);
        if (user is null)
        {
            return NotFound;
        }

        if (changed)
        {
            ServerLog.AdminChange(logger, admin.Subject, auditEvent, Id(userId));
        }

        return user;
    }

    /// <summary>Removes a device from a user, which frees its slot; audited (<c>user.device-removed</c>).</summary>
    public async Task<Outcome<UserDeviceRecord>> RemoveDeviceAsync(Caller admin, long userId, string thumbprint, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(admin);
        DateTimeOffset now = clock.Now();
        Outcome<UserDeviceRecord> removed = await store.WriteAsync<Outcome<UserDeviceRecord>>(
            s =>
            {
                if (s.Users.Get(userId) is not { } user)
                {
                    return NotFound;
                }

                UserDeviceRecord? device = s.Users.Device(userId, thumbprint);
                if (device is null || !s.Users.DeleteDevice(userId, thumbprint))
                {
                    return new Refused(Refusal.DeviceNotFound, $"User {Id(userId)} has no device '{thumbprint}'.");
                }

                s.Audit.Append(ModelCatalogue.Change(admin, UserDeviceRemoved) with { Device = thumbprint, Attributes = Attributes(user) }, now);
                return device;
            },
            cancellationToken).ConfigureAwait(false);
        if (removed.Succeeded)
        {
            ServerLog.AdminChange(logger, admin.Subject, UserDeviceRemoved, Id(userId));
        }

        return removed;
    }

    /// <summary>The audit attributes that name a user: its id, issuer and subject (the record's own are the admin's).</summary>
    private static Dictionary<string, string> Attributes(UserRecord user) => new(StringComparer.Ordinal)
    {
        ["user"] = Id(user.UserId),
        ["user.issuer"] = user.Issuer,
        ["user.subject"] = user.Subject,
    };

    private static string Id(long userId) => userId.ToString(CultureInfo.InvariantCulture);

    private static Refused NotFound => new(Refusal.UserNotFound, "There is no user with this id.");
}
