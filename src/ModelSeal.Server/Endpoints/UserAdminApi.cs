using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using ModelSeal.Protocol;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Http;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Endpoints;

/// <summary>The users entitlement rules granted keys to, and their devices (docs/protocol.md section 3, scope <c>admin</c>).</summary>
internal static class UserAdminApi
{
    public static IEndpointRouteBuilder MapUserAdminApi(this IEndpointRouteBuilder app)
    {
        RouteGroupBuilder group = app.MapGroup("/v1/admin/users")
            .RequireAuthorization(Authentication.AdminPolicy)
            .ProducesProblems(400, 401, 403, 404, 413, 429, 503)
            .WithTags("Administration");
        group.MapGet(string.Empty, List).WithSummary("Lists users (a trusted issuer's subjects that rules granted keys to) in pages, optionally of one issuer or subject.");
        group.MapGet("/{userId}", Show).WithSummary("Shows a user: its devices and its latest key releases and refusals.");
        group.MapGet("/{userId}/devices", Devices).WithSummary("Lists the devices registered for a user.");
        group.MapDelete("/{userId}/devices/{thumbprint}", RemoveDeviceAsync).WithSummary("Removes a device from a user, freeing its slot.");
        group.MapPost("/{userId}/block", (string userId, HttpContext http, Users users, ServerOptions options, CancellationToken ct) => SetBlockedAsync(userId, true, http, users, options, ct))
            .WithSummary("Blocks a user: refused at its next release (403 user-blocked), and its client drops its lease.");
        group.MapPost("/{userId}/unblock", (string userId, HttpContext http, Users users, ServerOptions options, CancellationToken ct) => SetBlockedAsync(userId, false, http, users, options, ct))
            .WithSummary("Unblocks a user.");
        return app;
    }

    internal static Results<Ok<UserPageResponse>, ProblemHttpResult> List(string? after, string? limit, string? issuer, string? subject, Users users)
    {
        long afterId = 0;
        int count = 100;
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (after is not null && (!long.TryParse(after, NumberStyles.None, CultureInfo.InvariantCulture, out afterId) || afterId < 0))
        {
            errors["after"] = ["Optional: a user id (a non-negative integer)."];
        }

        if (limit is not null && (!int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out count) || count is < 1 or > Users.MaxPage))
        {
            errors["limit"] = [$"Optional: an integer from 1 to {Users.MaxPage} (default 100)."];
        }

        if (issuer is not null && (issuer.Length is 0 or > 2048))
        {
            errors["issuer"] = ["Optional: a trusted issuer's exact 'iss' (1 to 2048 characters)."];
        }

        if (subject is not null && (subject.Length is 0 or > 2048))
        {
            errors["subject"] = ["Optional: a user's exact 'sub' (1 to 2048 characters)."];
        }

        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        UserPage page = users.List(afterId, count, issuer, subject);
        return TypedResults.Ok(new UserPageResponse([.. page.Items.Select(Contracts.ToItem)], page.Next));
    }

    internal static Results<Ok<UserDetailResponse>, ProblemHttpResult> Show(string userId, Users users)
    {
        if (Id(userId) is not { } id)
        {
            return InvalidId;
        }

        Outcome<UserDetail> detail = users.Show(id);
        return detail.Succeeded ? TypedResults.Ok(detail.Value.ToResponse()) : Problems.For(detail.Refused);
    }

    internal static Results<Ok<ItemsResponse<UserDeviceItem>>, ProblemHttpResult> Devices(string userId, Users users)
    {
        if (Id(userId) is not { } id)
        {
            return InvalidId;
        }

        Outcome<UserDetail> detail = users.Show(id);
        return detail.Succeeded ? TypedResults.Ok(new ItemsResponse<UserDeviceItem>([.. detail.Value.Devices.Select(Contracts.ToItem)])) : Problems.For(detail.Refused);
    }

    internal static async Task<Results<Ok<UserDeviceItem>, ProblemHttpResult>> RemoveDeviceAsync(string userId, string thumbprint, HttpContext http, Users users, ServerOptions options, CancellationToken cancellationToken)
    {
        if (Id(userId) is not { } id)
        {
            return InvalidId;
        }

        Outcome<UserDeviceRecord> removed = await users.RemoveDeviceAsync(http.Caller(options), id, thumbprint, cancellationToken).ConfigureAwait(false);
        return removed.Succeeded ? TypedResults.Ok(removed.Value.ToItem()) : Problems.For(removed.Refused);
    }

    internal static async Task<Results<Ok<UserItem>, ProblemHttpResult>> SetBlockedAsync(string userId, bool block, HttpContext http, Users users, ServerOptions options, CancellationToken cancellationToken)
    {
        if (Id(userId) is not { } id)
        {
            return InvalidId;
        }

        Outcome<UserRecord> changed = await users.SetBlockedAsync(http.Caller(options), id, block, cancellationToken).ConfigureAwait(false);
        return changed.Succeeded ? TypedResults.Ok(changed.Value.ToItem()) : Problems.For(changed.Refused);
    }

    private static ProblemHttpResult InvalidId => Problems.Invalid("userId", "The user id in the path must be a positive integer ('modelseal user list' shows them).");

    private static long? Id(string text) =>
        long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long id) && id > 0 ? id : null;
}
