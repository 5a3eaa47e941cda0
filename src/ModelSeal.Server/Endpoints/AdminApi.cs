using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Http;
using ModelSeal.Server.Security;
using ModelSeal.Server.Storage;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Endpoints;

/// <summary>
/// The administration API under <c>/v1/admin</c> (docs/protocol.md section 3), scope <c>admin</c>: each handler parses
/// and validates the request, calls the domain (<see cref="ModelCatalogue"/>, <see cref="Licences"/>,
/// <see cref="MasterKeyRotation"/>, <see cref="AuditTrail"/>) and maps its outcome.
/// </summary>
internal static class AdminApi
{
    public const int MaxSubjectLength = 256;
    public const int MaxLicenceModels = 1000;
    public const int MaxDevicesLimit = 1_000_000;

    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder app)
    {
        RouteGroupBuilder group = app.MapGroup("/v1/admin")
            .RequireAuthorization(Authentication.AdminPolicy)
            .ProducesProblems(400, 401, 403, 404, 409, 410, 413, 429, 503)
            .WithTags("Administration");

        group.MapPost("/models", CreateModelAsync).AcceptsJson<CreateModelRequest>().WithSummary("Creates a model.");
        group.MapGet("/models", (ModelCatalogue catalogue) => TypedResults.Ok(new ItemsResponse<ModelItem>(catalogue.List().ConvertAll(Contracts.ToItem))))
            .WithSummary("Lists models and their versions.");
        group.MapPost("/models/{modelId}/versions", CreateVersionAsync).AcceptsJson<CreateVersionRequest>()
            .WithSummary("Creates a model version with a new data key, returned sealed to the publisher's public key.");
        group.MapPost("/models/{modelId}/versions/{version}/disable", (string modelId, string version, HttpContext http, ModelCatalogue catalogue, ServerOptions options, CancellationToken ct) =>
            ChangeStateAsync(modelId, version, VersionState.Disabled, http, catalogue, options, ct)).WithSummary("Disables a version: no more releases.");
        group.MapPost("/models/{modelId}/versions/{version}/enable", (string modelId, string version, HttpContext http, ModelCatalogue catalogue, ServerOptions options, CancellationToken ct) =>
            ChangeStateAsync(modelId, version, VersionState.Active, http, catalogue, options, ct)).WithSummary("Enables a disabled version.");
        group.MapPost("/models/{modelId}/versions/{version}/destroy", (string modelId, string version, HttpContext http, ModelCatalogue catalogue, ServerOptions options, CancellationToken ct) =>
            ChangeStateAsync(modelId, version, VersionState.Destroyed, http, catalogue, options, ct)).WithSummary("Erases a version's key for good.");
        group.MapDelete("/models/{modelId}", DeleteModelAsync).WithSummary("Deletes a model whose versions are all destroyed (409 versions-not-destroyed otherwise).");
        group.MapPost("/licences", CreateLicenceAsync).AcceptsJson<CreateLicenceRequest>()
            .WithSummary("Creates a licence; a credential licence's credential is shown only here.");
        group.MapGet("/licences", (Licences licences) => TypedResults.Ok(new ItemsResponse<LicenceResponse>(licences.List().ConvertAll(Contracts.ToResponse))))
            .WithSummary("Lists licences (without credentials).");
        group.MapPost("/licences/{licenceId}/revoke", RevokeLicenceAsync).WithSummary("Revokes a licence.");
        group.MapPatch("/licences/{licenceId}", EditLicenceAsync).AcceptsJson<EditLicenceRequest>()
            .WithSummary("Changes a licence's end of validity, device limit or models; a lower limit keeps the devices registered and refuses new ones.");
        group.MapGet("/licences/{licenceId}/devices", ListDevices).WithSummary("Lists the devices registered for a licence.");
        group.MapDelete("/licences/{licenceId}/devices/{thumbprint}", RemoveDeviceAsync).WithSummary("Removes a device from a licence, freeing its slot.");
        group.MapPost("/master-key/rotate", async (HttpContext http, MasterKeyRotation rotation, ServerOptions options, CancellationToken ct) =>
        {
            Rotation rotated = await rotation.RotateAsync(http.Caller(options), ct).ConfigureAwait(false);
            return TypedResults.Ok(new RotateResponse(rotated.MasterKeyVersion, rotated.Rewrapped));
        }).WithSummary("Adds a new master key and rewraps every data key with it.");
        group.MapGet("/audit", ListAudit).WithSummary("Reads the audit log in pages, optionally only the records of a licence, a subject (user), a model, an event or a time range.");
        group.MapGet("/usage", Usage).WithSummary("Key releases and refusals (by reason) per model per UTC day, from the audit log.");
        group.MapGet("/audit/verify", VerifyAudit)
            .WithSummary("Walks the audit hash chain and reports the first record that does not chain, and checks the latest signed checkpoint (its signature by the answer key, and that the log still holds the record it covers); with expectRecords and expectHash (an earlier answer's records and lastHash) also detects records removed from the end.");
        return app;
    }

    internal static async Task<Results<Created<ModelCreatedResponse>, ProblemHttpResult>> CreateModelAsync(HttpContext http, ModelCatalogue catalogue, ServerOptions options, CancellationToken cancellationToken)
    {
        (CreateModelRequest? request, ProblemHttpResult? invalid) = await JsonBody.ReadAsync<CreateModelRequest>(http.Request, cancellationToken).ConfigureAwait(false);
        if (invalid is not null)
        {
            return invalid;
        }

        if (!Identifier.IsValid(request!.ModelId, Identifier.MaxIdLength))
        {
            return Problems.Invalid("modelId", "Required: an identifier (format.md 1.1) of 1 to 128 characters.");
        }

        Outcome<DateTimeOffset> created = await catalogue.CreateModelAsync(http.Caller(options), request.ModelId!, cancellationToken).ConfigureAwait(false);
        return created.Succeeded
            ? TypedResults.Created($"/v1/admin/models/{request.ModelId}", new ModelCreatedResponse(request.ModelId!, Rfc3339.Format(created.Value)))
            : Problems.For(created.Refused);
    }

    internal static async Task<Results<Created<ReleaseResponse>, ProblemHttpResult>> CreateVersionAsync(string modelId, HttpContext http, ModelCatalogue catalogue, AnswerSigning signing, ServerOptions options, CancellationToken cancellationToken)
    {
        if (!Identifier.IsValid(modelId, Identifier.MaxIdLength))
        {
            return Problems.Invalid("modelId", "The model id in the path must be an identifier (format.md 1.1) of 1 to 128 characters.");
        }

        (CreateVersionRequest? request, ProblemHttpResult? invalid) = await JsonBody.ReadAsync<CreateVersionRequest>(http.Request, cancellationToken).ConfigureAwait(false);
        if ((invalid ?? ValidateVersion(request!)) is { } problem)
        {
            return problem;
        }

        byte[]? publisherKey = Callers.DecodeBase64Url(request!.PublisherPublicKey);
        Caller caller = http.Caller(options);
        Outcome<ReleasedKey> created = await catalogue.CreateVersionAsync(caller, modelId, request.Version, publisherKey, cancellationToken).ConfigureAwait(false);
        return created.Succeeded
            ? TypedResults.Created($"/v1/admin/models/{modelId}/versions/{created.Value.Version}", signing.Released(created.Value, AnswerSigning.Nonce(request.Nonce), publisherKey, caller.Subject))
            : Problems.For(created.Refused);
    }

    internal static async Task<Results<Ok<StateResponse>, ProblemHttpResult>> ChangeStateAsync(string modelId, string version, VersionState target, HttpContext http, ModelCatalogue catalogue, ServerOptions options, CancellationToken cancellationToken)
    {
        if (!Identifier.IsValid(modelId, Identifier.MaxIdLength) || !Identifier.IsValid(version, Identifier.MaxVersionLength))
        {
            return Problems.Invalid("path", "The model id (1 to 128) and version (1 to 64) in the path must be identifiers (format.md 1.1).");
        }

        Outcome<VersionState> changed = await catalogue.ChangeStateAsync(http.Caller(options), modelId, version, target, cancellationToken).ConfigureAwait(false);
        return changed.Succeeded ? TypedResults.Ok(new StateResponse(changed.Value.Name())) : Problems.For(changed.Refused);
    }

    internal static async Task<Results<Created<LicenceCreatedResponse>, ProblemHttpResult>> CreateLicenceAsync(HttpContext http, Licences licences, ServerOptions options, CancellationToken cancellationToken)
    {
        (CreateLicenceRequest? request, ProblemHttpResult? invalid) = await JsonBody.ReadAsync<CreateLicenceRequest>(http.Request, cancellationToken).ConfigureAwait(false);
        if (invalid is not null)
        {
            return invalid;
        }

        (NewLicence? spec, ProblemHttpResult? problem) = LicenceRequests.Validate(request!, options);
        if (problem is not null)
        {
            return problem;
        }

        CreatedLicence created = await licences.CreateAsync(http.Caller(options), spec!, cancellationToken).ConfigureAwait(false);
        return TypedResults.Created($"/v1/admin/licences/{created.Licence.LicenceId}", created.ToResponse());
    }

    internal static async Task<Results<Ok<LicenceResponse>, ProblemHttpResult>> RevokeLicenceAsync(string licenceId, HttpContext http, Licences licences, ServerOptions options, CancellationToken cancellationToken)
    {
        Outcome<LicenceRecord> revoked = await licences.RevokeAsync(http.Caller(options), licenceId, cancellationToken).ConfigureAwait(false);
        return revoked.Succeeded ? TypedResults.Ok(Contracts.ToResponse(revoked.Value)) : Problems.For(revoked.Refused);
    }

    internal static async Task<Results<Ok<ModelDeletedResponse>, ProblemHttpResult>> DeleteModelAsync(string modelId, HttpContext http, ModelCatalogue catalogue, ServerOptions options, CancellationToken cancellationToken)
    {
        if (!Identifier.IsValid(modelId, Identifier.MaxIdLength))
        {
            return Problems.Invalid("modelId", "The model id in the path must be an identifier (format.md 1.1) of 1 to 128 characters.");
        }

        Outcome<DeletedModel> deleted = await catalogue.DeleteModelAsync(http.Caller(options), modelId, cancellationToken).ConfigureAwait(false);
        return deleted.Succeeded ? TypedResults.Ok(new ModelDeletedResponse(modelId, deleted.Value.Versions, Rfc3339.Format(deleted.Value.DeletedAt))) : Problems.For(deleted.Refused);
    }

    internal static async Task<Results<Ok<LicenceResponse>, ProblemHttpResult>> EditLicenceAsync(string licenceId, HttpContext http, Licences licences, ServerOptions options, CancellationToken cancellationToken)
    {
        (EditLicenceRequest? request, ProblemHttpResult? invalid) = await JsonBody.ReadAsync<EditLicenceRequest>(http.Request, cancellationToken).ConfigureAwait(false);
        if (invalid is not null)
        {
            return invalid;
        }

        (LicenceChange? change, ProblemHttpResult? problem) = LicenceRequests.ValidateEdit(request!, options);
        if (problem is not null)
        {
            return problem;
        }

        Outcome<LicenceRecord> edited = await licences.EditAsync(http.Caller(options), licenceId, change!, cancellationToken).ConfigureAwait(false);
        return edited.Succeeded ? TypedResults.Ok(Contracts.ToResponse(edited.Value)) : Problems.For(edited.Refused);
    }

    internal static async Task<Results<Ok<DeviceItem>, ProblemHttpResult>> RemoveDeviceAsync(string licenceId, string thumbprint, HttpContext http, Licences licences, ServerOptions options, CancellationToken cancellationToken)
    {
        Outcome<DeviceRecord> removed = await licences.RemoveDeviceAsync(http.Caller(options), licenceId, thumbprint, cancellationToken).ConfigureAwait(false);
        return removed.Succeeded ? TypedResults.Ok(Contracts.ToItem(removed.Value)) : Problems.For(removed.Refused);
    }

    internal static Results<Ok<ItemsResponse<DeviceItem>>, ProblemHttpResult> ListDevices(string licenceId, Licences licences)
    {
        Outcome<List<DeviceRecord>> devices = licences.Devices(licenceId);
        return devices.Succeeded
            ? TypedResults.Ok(new ItemsResponse<DeviceItem>(devices.Value.ConvertAll(Contracts.ToItem)))
            : Problems.For(devices.Refused);
    }

    internal static Results<Ok<AuditPage>, ProblemHttpResult> ListAudit(string? after, string? limit, string? licenceId, string? subject, string? modelId, string? @event, string? since, string? until, AuditTrail audit)
    {
        long afterId = 0;
        int count = 100;
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (after is not null && (!long.TryParse(after, NumberStyles.None, CultureInfo.InvariantCulture, out afterId) || afterId < 0))
        {
            errors["after"] = ["Optional: a record id (a non-negative integer)."];
        }

        if (limit is not null && (!int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out count) || count is < 1 or > AuditTrail.MaxPage))
        {
            errors["limit"] = [$"Optional: an integer from 1 to {AuditTrail.MaxPage} (default 100)."];
        }

        (DateTimeOffset? from, DateTimeOffset? to) = TimeRange(since, until, errors);
        if (@event is not null && (@event.Length is 0 or > 64 || !@event.All(c => char.IsAsciiLetterLower(c) || c is '.' or '-')))
        {
            errors["event"] = ["Optional: an audit event name (docs/protocol.md section 4), e.g. key.released."];
        }

        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        var filter = new AuditFilter(licenceId, modelId, @event is null ? null : [@event], from, to, subject);
        List<AuditItem> items = audit.List(afterId, count, filter).ConvertAll(Contracts.ToItem);
        return TypedResults.Ok(new AuditPage(items, items.Count == count ? items[^1].Id : null));
    }

    internal static Results<Ok<UsageResponse>, ProblemHttpResult> Usage(string? since, string? until, UsageSummary usage)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        (DateTimeOffset? from, DateTimeOffset? to) = TimeRange(since, until, errors);
        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        List<UsageItem> items = usage.Summarize(from, to).ConvertAll(r => new UsageItem(
            r.ModelId, r.Day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), r.Releases, r.Refusals.Values.Sum(), r.Refusals));
        return TypedResults.Ok(new UsageResponse(Rfc3339.Format(from), Rfc3339.Format(to), items));
    }

    /// <summary>The optional <c>since</c> (inclusive) and <c>until</c> (exclusive) query parameters, RFC 3339; errors named in <paramref name="errors"/>.</summary>
    private static (DateTimeOffset? Since, DateTimeOffset? Until) TimeRange(string? since, string? until, Dictionary<string, string[]> errors)
    {
        DateTimeOffset from = default, to = default;
        if (since is not null && !Rfc3339.TryParse(since, out from))
        {
            errors["since"] = ["Optional: an RFC 3339 time with offset (inclusive), e.g. 2026-11-23T00:00:00Z."];
        }

        if (until is not null && !Rfc3339.TryParse(until, out to))
        {
            errors["until"] = ["Optional: an RFC 3339 time with offset (exclusive), e.g. 2026-11-24T00:00:00Z."];
        }
        else if (since is not null && until is not null && !errors.ContainsKey("since") && to <= from)
        {
            errors["until"] = ["Must be later than since."];
        }

        return (since is null ? null : from, until is null ? null : to);
    }

    internal static Results<Ok<AuditVerifyResponse>, ProblemHttpResult> VerifyAudit(string? expectRecords, string? expectHash, AuditTrail audit)
    {
        long records = 0;
        byte[]? hash = null;
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (expectRecords is not null && (!long.TryParse(expectRecords, NumberStyles.None, CultureInfo.InvariantCulture, out records) || records < 0))
        {
            errors["expectRecords"] = ["Optional, with expectHash: a record count (a non-negative integer) from an earlier verification."];
        }

        if (expectHash is not null && (hash = Callers.DecodeBase64Url(expectHash)) is not { Length: AuditChain.HashSize })
        {
            errors["expectHash"] = ["Optional, with expectRecords: base64url of a 32-byte lastHash from an earlier verification."];
        }

        if ((expectRecords is null) != (expectHash is null))
        {
            errors[expectRecords is null ? "expectRecords" : "expectHash"] = ["expectRecords and expectHash go together."];
        }

        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        AuditVerification result = audit.Verify(expectRecords is null ? null : records, hash);
        AuditCheckpointInfo? checkpoint = result.Checkpoint is { } c
            ? new AuditCheckpointInfo(c.Records, c.LastId, System.Buffers.Text.Base64Url.EncodeToString(c.LastHash), Rfc3339.Format(c.At), c.KeyId, System.Buffers.Text.Base64Url.EncodeToString(c.Signature), result.CheckpointVerified)
            : null;
        return TypedResults.Ok(new AuditVerifyResponse(result.Verified, result.Records, result.LastId, System.Buffers.Text.Base64Url.EncodeToString(result.LastHash), result.FirstBadId, result.Reason, checkpoint));
    }

    internal static ProblemHttpResult? ValidateVersion(CreateVersionRequest request)
    {
        if (KeyReleaseApi.UnsupportedProtocol(request.Protocol) is { } unsupported)
        {
            return unsupported;
        }

        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (AnswerSigning.Nonce(request.Nonce) is null)
        {
            errors["nonce"] = [KeyReleaseApi.NonceRule];
        }

        if (request.Version is not null && (!Identifier.IsValid(request.Version, Identifier.MaxVersionLength) || request.Version == ReleaseRules.Latest))
        {
            errors["version"] = ["Optional: an identifier (format.md 1.1) of 1 to 64 characters other than \"latest\"."];
        }

        if (string.IsNullOrEmpty(request.PublisherPublicKey))
        {
            errors["publisherPublicKey"] = ["Required: base64url of the publisher's 65-byte uncompressed P-256 public key."];
        }

        return errors.Count > 0 ? Problems.Invalid(errors) : null;
    }
}
