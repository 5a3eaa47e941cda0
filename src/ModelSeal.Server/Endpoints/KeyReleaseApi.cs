using System.Data.Common;
using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using ModelSeal.Hpke;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.Http;
using ModelSeal.Server.MasterKeys;
using ModelSeal.Server.Security;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Endpoints;

/// <summary><c>POST /v1/keys/release</c> (docs/protocol.md section 2).</summary>
internal static class KeyReleaseApi
{
    public const string Latest = "latest";

    public static IEndpointRouteBuilder MapKeyReleaseApi(this IEndpointRouteBuilder app)
    {
        RouteGroupBuilder group = app.MapGroup("/v1/keys")
            .RequireAuthorization(Authentication.KeysPolicy)
            .RequireRateLimiting(RateLimits.ReleasePolicy)
            .ProducesProblems(400, 401, 403, 404, 410, 413, 429, 503)
            .WithTags("Keys");
        group.MapPost("/release", ReleaseAsync)
            .AcceptsJson<ReleaseRequest>()
            .WithName("ReleaseKey")
            .WithSummary("Releases a model version's data key, sealed with HPKE to the device's public key.");
        return app;
    }

    internal static async Task<Results<Ok<ReleaseResponse>, ProblemHttpResult>> ReleaseAsync(HttpContext http, KeyServer server, ServerTelemetry telemetry, CancellationToken cancellationToken)
    {
        Results<Ok<ReleaseResponse>, ProblemHttpResult> answer = await DecideAsync(http, server, cancellationToken).ConfigureAwait(false);
        switch (answer.Result)
        {
            case Ok<ReleaseResponse> { Value: { } released }:
                telemetry.KeyReleased(released.ModelId);
                break;
            case ProblemHttpResult { ProblemDetails.Type: { } type } when type.StartsWith(Problems.TypePrefix, StringComparison.Ordinal):
                // Counted by ServerTelemetry when the response starts (as are refusals before this handler: 401, 429...).
                http.Items[ServerTelemetry.ReasonItem] = type[Problems.TypePrefix.Length..];
                break;
        }

        return answer;
    }

    private static async Task<Results<Ok<ReleaseResponse>, ProblemHttpResult>> DecideAsync(HttpContext http, KeyServer server, CancellationToken cancellationToken)
    {
        (ReleaseRequest? request, ProblemHttpResult? invalid) = await JsonBody.ReadAsync<ReleaseRequest>(http.Request, cancellationToken).ConfigureAwait(false);
        if (invalid is not null)
        {
            return invalid;
        }

        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (!Identifier.IsValid(request!.ModelId, Identifier.MaxIdLength))
        {
            errors["modelId"] = ["Required: an identifier (format.md 1.1) of 1 to 128 characters."];
        }

        if (request.Version != Latest && !Identifier.IsValid(request.Version, Identifier.MaxVersionLength))
        {
            errors["version"] = ["Required: \"latest\" or an identifier (format.md 1.1) of 1 to 64 characters."];
        }

        if (string.IsNullOrEmpty(request.DevicePublicKey))
        {
            errors["devicePublicKey"] = ["Required: base64url of the device's 65-byte uncompressed P-256 public key."];
        }

        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        string modelId = request.ModelId!;
        string requestedVersion = request.Version!;
        Activity? activity = Activity.Current?.OperationName == ServerTelemetry.ReleaseActivity ? Activity.Current : null;
        activity?.SetTag("modelseal.model", modelId);
        activity?.SetTag("modelseal.version", requestedVersion);
        string subject = Authentication.Subject(http.User);
        byte[]? deviceKey = KeyServer.DecodeBase64Url(request.DevicePublicKey);
        string? device = deviceKey is null ? null : HpkePublicKey.Thumbprint(deviceKey);
        LicenceRecord? licence = server.FindLicence(http.User);
        var refused = new AuditEntry(AuditEvents.KeyRefused, string.Empty, subject, licence?.LicenceId, modelId, requestedVersion, null, device, http.Connection.RemoteIpAddress?.ToString());

        // The checks of protocol.md section 2, in its order.
        if (licence is null || licence.RevokedAt is not null)
        {
            return await RefuseAsync(server, refused, Problems.LicenceRevoked, licence is null ? "No licence exists for this token." : "The licence was revoked.", cancellationToken).ConfigureAwait(false);
        }

        DateTimeOffset now = server.Now();
        if (licence.NotBefore is { } notBefore && now < notBefore)
        {
            return await RefuseAsync(server, refused, Problems.LicenceNotYetValid, $"The licence is valid from {Rfc3339.Format(notBefore)}.", cancellationToken).ConfigureAwait(false);
        }

        if (licence.ExpiresAt is { } expiresAt && now >= expiresAt)
        {
            return await RefuseAsync(server, refused, Problems.LicenceExpired, $"The licence expired at {Rfc3339.Format(expiresAt)}.", cancellationToken).ConfigureAwait(false);
        }

        if (!licence.Covers(modelId))
        {
            return await RefuseAsync(server, refused, Problems.ModelNotLicensed, $"The licence does not cover model '{modelId}'.", cancellationToken).ConfigureAwait(false);
        }

        (bool modelExists, VersionRecord? version) = server.Store.Read(s =>
            (s.ModelExists(modelId), requestedVersion == Latest ? s.FindLatestActiveVersion(modelId) : s.FindVersion(modelId, requestedVersion)));
        if (!modelExists)
        {
            return await RefuseAsync(server, refused, Problems.ModelNotFound, $"There is no model '{modelId}'.", cancellationToken).ConfigureAwait(false);
        }

        if (version is null)
        {
            string detail = requestedVersion == Latest ? $"Model '{modelId}' has no active version." : $"Model '{modelId}' has no version '{requestedVersion}'.";
            return await RefuseAsync(server, refused, Problems.VersionNotFound, detail, cancellationToken).ConfigureAwait(false);
        }

        refused = refused with { Version = version.Version, KeyId = version.KeyId };
        activity?.SetTag("modelseal.version", version.Version);
        if (version.State != VersionStates.Active)
        {
            return await RefuseState(server, refused, version.State, cancellationToken).ConfigureAwait(false);
        }

        HpkeRecipientKey? recipient = server.DeviceKey(deviceKey, device);
        if (recipient is null)
        {
            return await RefuseAsync(server, refused, Problems.InvalidDeviceKey, "devicePublicKey must be base64url (no padding) of a 65-byte uncompressed point (04 || X || Y) on P-256.", cancellationToken).ConfigureAwait(false);
        }

        DateTimeOffset lease = now + server.Options.LeaseDuration;
        if (licence.ExpiresAt is { } cap && cap < lease)
        {
            lease = cap;
        }

        lease = DateTimeOffset.FromUnixTimeSeconds(lease.ToUnixTimeSeconds());
        AuditEntry released = refused with { Event = AuditEvents.KeyReleased, Outcome = "ok" };

        // One transaction: the version is still active, the device fits the licence, the device is registered or
        // touched and the release is recorded. Only after it commits is the key sealed.
        ReleaseOutcome outcome;
        using (Activity? write = ServerTelemetry.Source.StartActivity(ServerTelemetry.StoreWriteActivity, ActivityKind.Internal))
        {
            // The write runs on the store's writer thread: the unwrap's activity is parented explicitly.
            ActivityContext parent = write?.Context ?? default;
            try
            {
                outcome = await server.Store.WriteAsync(s => RecordRelease(s, server.MasterKeys, version, licence, device!, released, now, parent), cancellationToken).ConfigureAwait(false);
            }
            catch (DbException e)
            {
                write?.SetStatus(ActivityStatusCode.Error, e.GetType().Name);
                ServerLog.AuditUnavailable(server.Logger, e.GetType().Name, Store.ErrorCode(e));
                return Problems.Create(Problems.AuditUnavailable, "The release could not be recorded in the audit log, so no key was released. Try again later.");
            }
        }

        using (outcome)
        {
            if (outcome.Key is null)
            {
                return outcome.Refusal switch
                {
                    Problems.DeviceLimit => await RefuseAsync(server, refused, Problems.DeviceLimit, $"The licence allows {licence.MaxDevices} device(s) and all are registered.", cancellationToken).ConfigureAwait(false),
                    Problems.LicenceRevoked => await RefuseAsync(server, refused, Problems.LicenceRevoked, "The licence was revoked.", cancellationToken).ConfigureAwait(false),
                    _ => await RefuseState(server, refused, outcome.Refusal!, cancellationToken).ConfigureAwait(false),
                };
            }

            (byte[] enc, byte[] sealedKey) = KeyRelease.Seal(outcome.Key, recipient, modelId, version.Version, subject, lease);
            ServerLog.KeyReleased(server.Logger, licence.LicenceId, version.KeyId, device!);
            return TypedResults.Ok(new ReleaseResponse(
                modelId,
                version.Version,
                version.KeyId,
                KeyRelease.Suite,
                System.Buffers.Text.Base64Url.EncodeToString(enc),
                System.Buffers.Text.Base64Url.EncodeToString(sealedKey),
                Rfc3339.Format(lease)));
        }
    }

    private static ReleaseOutcome RecordRelease(Store.Session session, MasterKeyRing masterKeys, VersionRecord version, LicenceRecord licence, string device, AuditEntry released, DateTimeOffset now, ActivityContext parent)
    {
        // Re-checked inside the transaction: a revocation or a state change committed before this release's
        // transaction refuses it, however recently it happened.
        if (!session.LicenceActive(licence.LicenceId))
        {
            return new ReleaseOutcome(null, Problems.LicenceRevoked);
        }

        (string state, int masterKeyVersion, byte[]? wrapped) = session.ReadKey(version.Sequence);
        if (state != VersionStates.Active)
        {
            return new ReleaseOutcome(null, state);
        }

        if (session.DeviceExists(licence.LicenceId, device))
        {
            session.TouchDevice(licence.LicenceId, device, now);
        }
        else if (session.CountDevices(licence.LicenceId) >= licence.MaxDevices)
        {
            return new ReleaseOutcome(null, Problems.DeviceLimit);
        }
        else
        {
            session.InsertDevice(licence.LicenceId, device, now);
        }

        byte[] keyBytes = GC.AllocateArray<byte>(ModelKey.SizeInBytes, pinned: true);
        try
        {
            masterKeys.Unwrap(masterKeyVersion, wrapped!, version.KeyId, keyBytes, parent);
            var key = ModelKey.Import(keyBytes, version.KeyId);
            try
            {
                session.AppendAudit(released, now);
            }
            catch
            {
                key.Dispose();
                throw;
            }

            return new ReleaseOutcome(key, null);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(keyBytes);
        }
    }

    private static Task<ProblemHttpResult> RefuseState(KeyServer server, AuditEntry refused, string state, CancellationToken cancellationToken) =>
        state == VersionStates.Destroyed
            ? RefuseAsync(server, refused, Problems.VersionDestroyed, $"The key of version '{refused.Version}' was destroyed; files sealed with it can no longer be opened.", cancellationToken)
            : RefuseAsync(server, refused, Problems.VersionDisabled, $"Version '{refused.Version}' is disabled.", cancellationToken);

    private static async Task<ProblemHttpResult> RefuseAsync(KeyServer server, AuditEntry refused, string code, string detail, CancellationToken cancellationToken)
    {
        ServerLog.KeyRefused(server.Logger, code, refused.LicenceId, refused.ModelId, refused.Version, refused.Device);
        await server.TryAuditAsync(refused with { Outcome = code }, cancellationToken).ConfigureAwait(false);
        return Problems.Create(code, detail);
    }

    /// <summary>The unwrapped key of a recorded release, or why there is none. Disposing zeroes the key.</summary>
    private sealed record ReleaseOutcome(ModelKey? Key, string? Refusal) : IDisposable
    {
        public void Dispose() => Key?.Dispose();
    }
}
