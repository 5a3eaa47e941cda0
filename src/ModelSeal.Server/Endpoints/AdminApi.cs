using System.Data.Common;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using ModelSeal.Hpke;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.Http;
using ModelSeal.Server.Security;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Endpoints;

/// <summary>The administration API under <c>/v1/admin</c> (docs/protocol.md section 3), scope <c>admin</c>.</summary>
internal static class AdminApi
{
    public const int MaxSubjectLength = 256;
    public const int MaxLicenceModels = 1000;
    public const int MaxDevicesLimit = 1_000_000;
    public static readonly TimeSpan PublisherLease = TimeSpan.FromHours(1);

    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder app)
    {
        RouteGroupBuilder group = app.MapGroup("/v1/admin")
            .RequireAuthorization(Authentication.AdminPolicy)
            .ProducesProblems(400, 401, 403, 404, 409, 410, 413, 429, 503)
            .WithTags("Administration");

        group.MapPost("/models", CreateModelAsync).AcceptsJson<CreateModelRequest>().WithSummary("Creates a model.");
        group.MapGet("/models", ListModels).WithSummary("Lists models and their versions.");
        group.MapPost("/models/{modelId}/versions", CreateVersionAsync).AcceptsJson<CreateVersionRequest>()
            .WithSummary("Creates a model version with a new data key, returned sealed to the publisher's public key.");
        group.MapPost("/models/{modelId}/versions/{version}/disable", (string modelId, string version, HttpContext http, KeyServer server, CancellationToken ct) =>
            ChangeStateAsync(modelId, version, VersionStates.Disabled, http, server, ct)).WithSummary("Disables a version: no more releases.");
        group.MapPost("/models/{modelId}/versions/{version}/enable", (string modelId, string version, HttpContext http, KeyServer server, CancellationToken ct) =>
            ChangeStateAsync(modelId, version, VersionStates.Active, http, server, ct)).WithSummary("Enables a disabled version.");
        group.MapPost("/models/{modelId}/versions/{version}/destroy", (string modelId, string version, HttpContext http, KeyServer server, CancellationToken ct) =>
            ChangeStateAsync(modelId, version, VersionStates.Destroyed, http, server, ct)).WithSummary("Erases a version's key for good.");
        group.MapPost("/licences", CreateLicenceAsync).AcceptsJson<CreateLicenceRequest>().WithSummary("Creates a licence; its credential is shown only here.");
        group.MapGet("/licences", ListLicences).WithSummary("Lists licences (without credentials).");
        group.MapPost("/licences/{licenceId}/revoke", RevokeLicenceAsync).WithSummary("Revokes a licence.");
        group.MapGet("/licences/{licenceId}/devices", ListDevices).WithSummary("Lists the devices registered for a licence.");
        group.MapPost("/master-key/rotate", RotateMasterKeyAsync).WithSummary("Adds a new master key and rewraps every data key with it.");
        group.MapGet("/audit", ListAudit).WithSummary("Reads the audit log in pages.");
        group.MapGet("/audit/verify", VerifyAudit)
            .WithSummary("Walks the audit hash chain and reports the first record that does not chain; with expectRecords and expectHash (an earlier answer's records and lastHash) also detects records removed from the end.");
        return app;
    }

    internal static async Task<Results<Created<ModelCreatedResponse>, ProblemHttpResult>> CreateModelAsync(HttpContext http, KeyServer server, CancellationToken cancellationToken)
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

        string modelId = request.ModelId!;
        string admin = Authentication.Subject(http.User);
        DateTimeOffset now = server.Now();
        bool created = await server.Store.WriteAsync(
            s =>
            {
                if (s.ModelExists(modelId))
                {
                    return false;
                }

                s.InsertModel(modelId, now);
                s.AppendAudit(new AuditEntry(AuditEvents.ModelCreated, "ok", admin, ModelId: modelId, Client: Client(http)), now);
                return true;
            },
            cancellationToken).ConfigureAwait(false);
        if (!created)
        {
            return Problems.Create(Problems.ModelExists, $"Model '{modelId}' already exists.");
        }

        ServerLog.AdminChange(server.Logger, admin, AuditEvents.ModelCreated, modelId);
        return TypedResults.Created($"/v1/admin/models/{modelId}", new ModelCreatedResponse(modelId, Rfc3339.Format(now)));
    }

    internal static Ok<ItemsResponse<ModelItem>> ListModels(KeyServer server)
    {
        List<ModelRecord> models = server.Store.Read(s => s.ListModels());
        return TypedResults.Ok(new ItemsResponse<ModelItem>(models.ConvertAll(m => new ModelItem(
            m.ModelId,
            Rfc3339.Format(m.CreatedAt),
            m.Versions.Select(v => new VersionItem(v.Version, v.KeyId, v.State, Rfc3339.Format(v.CreatedAt))).ToList()))));
    }

    internal static async Task<Results<Created<ReleaseResponse>, ProblemHttpResult>> CreateVersionAsync(string modelId, HttpContext http, KeyServer server, CancellationToken cancellationToken)
    {
        if (!Identifier.IsValid(modelId, Identifier.MaxIdLength))
        {
            return Problems.Invalid("modelId", "The model id in the path must be an identifier (format.md 1.1) of 1 to 128 characters.");
        }

        (CreateVersionRequest? request, ProblemHttpResult? invalid) = await JsonBody.ReadAsync<CreateVersionRequest>(http.Request, cancellationToken).ConfigureAwait(false);
        if (invalid is not null)
        {
            return invalid;
        }

        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (request!.Version is not null && (!Identifier.IsValid(request.Version, Identifier.MaxVersionLength) || request.Version == KeyReleaseApi.Latest))
        {
            errors["version"] = ["Optional: an identifier (format.md 1.1) of 1 to 64 characters other than \"latest\"."];
        }

        if (string.IsNullOrEmpty(request.PublisherPublicKey))
        {
            errors["publisherPublicKey"] = ["Required: base64url of the publisher's 65-byte uncompressed P-256 public key."];
        }

        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        byte[]? publisherKey = KeyServer.DecodeBase64Url(request.PublisherPublicKey);
        if (!KeyServer.IsValidPublicKey(publisherKey))
        {
            return Problems.Create(Problems.InvalidDeviceKey, "publisherPublicKey must be base64url (no padding) of a 65-byte uncompressed point (04 || X || Y) on P-256.");
        }

        string admin = Authentication.Subject(http.User);
        DateTimeOffset now = server.Now();
        DateTimeOffset lease = now + PublisherLease;
        string? client = Client(http);
        CreatedVersion created = await server.Store.WriteAsync(
            s =>
            {
                if (!s.ModelExists(modelId))
                {
                    return new CreatedVersion(null, null, Problems.ModelNotFound);
                }

                string version = request.Version ?? NextVersion(s.VersionNames(modelId));
                if (s.FindVersion(modelId, version) is not null)
                {
                    return new CreatedVersion(null, version, Problems.VersionExists);
                }

                string keyId;
                do
                {
                    keyId = NewKeyId(modelId, version);
                }
                while (s.KeyIdExists(keyId));

                byte[] keyBytes = GC.AllocateArray<byte>(ModelKey.SizeInBytes, pinned: true);
                try
                {
                    RandomNumberGenerator.Fill(keyBytes);
                    (int masterKeyVersion, byte[] wrapped) = server.MasterKeys.Wrap(keyBytes, keyId);
                    s.InsertVersion(modelId, version, keyId, masterKeyVersion, wrapped, now);
                    s.AppendAudit(new AuditEntry(AuditEvents.VersionCreated, "ok", admin, ModelId: modelId, Version: version, KeyId: keyId, Device: HpkePublicKey.Thumbprint(publisherKey), Client: client), now);
                    return new CreatedVersion(ModelKey.Import(keyBytes, keyId), version, null);
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(keyBytes);
                }
            },
            cancellationToken).ConfigureAwait(false);

        using (created)
        {
            if (created.Key is null)
            {
                return created.Problem == Problems.ModelNotFound
                    ? Problems.Create(Problems.ModelNotFound, $"There is no model '{modelId}'.")
                    : Problems.Create(Problems.VersionExists, $"Model '{modelId}' already has version '{created.Version}'.");
            }

            (byte[] enc, byte[] sealedKey) = KeyRelease.Seal(created.Key, publisherKey, modelId, created.Version!, admin, lease);
            ServerLog.AdminChange(server.Logger, admin, AuditEvents.VersionCreated, created.Key.KeyId);
            return TypedResults.Created(
                $"/v1/admin/models/{modelId}/versions/{created.Version}",
                new ReleaseResponse(modelId, created.Version!, created.Key.KeyId, KeyRelease.Suite, System.Buffers.Text.Base64Url.EncodeToString(enc), System.Buffers.Text.Base64Url.EncodeToString(sealedKey), Rfc3339.Format(lease)));
        }
    }

    internal static async Task<Results<Ok<StateResponse>, ProblemHttpResult>> ChangeStateAsync(string modelId, string version, string target, HttpContext http, KeyServer server, CancellationToken cancellationToken)
    {
        if (!Identifier.IsValid(modelId, Identifier.MaxIdLength) || !Identifier.IsValid(version, Identifier.MaxVersionLength))
        {
            return Problems.Invalid("path", "The model id (1 to 128) and version (1 to 64) in the path must be identifiers (format.md 1.1).");
        }

        string admin = Authentication.Subject(http.User);
        DateTimeOffset now = server.Now();
        string? client = Client(http);
        string auditEvent = target switch
        {
            VersionStates.Active => AuditEvents.VersionEnabled,
            VersionStates.Disabled => AuditEvents.VersionDisabled,
            _ => AuditEvents.VersionDestroyed,
        };
        (string? problem, string? keyId) = await server.Store.WriteAsync<(string?, string?)>(
            s =>
            {
                if (!s.ModelExists(modelId))
                {
                    return (Problems.ModelNotFound, null);
                }

                VersionRecord? record = s.FindVersion(modelId, version);
                if (record is null)
                {
                    return (Problems.VersionNotFound, null);
                }

                if (record.State == VersionStates.Destroyed && target != VersionStates.Destroyed)
                {
                    return (Problems.VersionDestroyed, record.KeyId);
                }

                if (record.State != target)
                {
                    s.SetState(record.Sequence, target);
                    s.AppendAudit(new AuditEntry(auditEvent, "ok", admin, ModelId: modelId, Version: version, KeyId: record.KeyId, Client: client), now);
                }

                return (null, record.KeyId);
            },
            cancellationToken).ConfigureAwait(false);

        switch (problem)
        {
            case Problems.ModelNotFound:
                return Problems.Create(problem, $"There is no model '{modelId}'.");
            case Problems.VersionNotFound:
                return Problems.Create(problem, $"Model '{modelId}' has no version '{version}'.");
            case Problems.VersionDestroyed:
                return Problems.Create(problem, $"The key of version '{version}' was destroyed; a destroyed version cannot change state.");
        }

        ServerLog.AdminChange(server.Logger, admin, auditEvent, keyId!);
        if (target == VersionStates.Destroyed)
        {
            try
            {
                await server.Store.CheckpointAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (DbException e)
            {
                ServerLog.CheckpointFailed(server.Logger, e.GetType().Name);
            }
        }

        return TypedResults.Ok(new StateResponse(target));
    }

    internal static async Task<Results<Created<LicenceCreatedResponse>, ProblemHttpResult>> CreateLicenceAsync(HttpContext http, KeyServer server, CancellationToken cancellationToken)
    {
        (CreateLicenceRequest? request, ProblemHttpResult? invalid) = await JsonBody.ReadAsync<CreateLicenceRequest>(http.Request, cancellationToken).ConfigureAwait(false);
        if (invalid is not null)
        {
            return invalid;
        }

        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (string.IsNullOrWhiteSpace(request!.Subject) || request.Subject.Length > MaxSubjectLength || request.Subject.Any(char.IsControl))
        {
            errors["subject"] = [$"Required: 1 to {MaxSubjectLength} characters without control characters."];
        }

        List<string> models = request.Models?.Where(m => m is not null).Select(m => m!).ToList() ?? [];
        bool wildcard = models is ["*"];
        if (request.Models is null || models.Count == 0 || models.Count != request.Models.Count || models.Count > MaxLicenceModels ||
            (!wildcard && !models.TrueForAll(m => Identifier.IsValid(m, Identifier.MaxIdLength))))
        {
            errors["models"] = [$"Required: [\"*\"], or 1 to {MaxLicenceModels} model ids (identifiers, format.md 1.1)."];
        }

        DateTimeOffset notBefore = default, expiresAt = default;
        if (request.NotBefore is not null && !Rfc3339.TryParse(request.NotBefore, out notBefore))
        {
            errors["notBefore"] = ["Optional: an RFC 3339 time with offset, e.g. 2026-11-23T10:00:00Z."];
        }

        if (request.ExpiresAt is not null && !Rfc3339.TryParse(request.ExpiresAt, out expiresAt))
        {
            errors["expiresAt"] = ["Optional: an RFC 3339 time with offset, e.g. 2026-11-23T10:00:00Z."];
        }
        else if (request.ExpiresAt is not null && request.NotBefore is not null && !errors.ContainsKey("notBefore") && expiresAt <= notBefore)
        {
            errors["expiresAt"] = ["Must be later than notBefore."];
        }

        if (request.MaxDevices is not (>= 1 and <= MaxDevicesLimit))
        {
            errors["maxDevices"] = [$"Required: an integer from 1 to {MaxDevicesLimit}."];
        }

        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        string admin = Authentication.Subject(http.User);
        DateTimeOffset now = server.Now();
        string licenceId = "lic_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        string credential = System.Buffers.Text.Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));
        var licence = new LicenceRecord(
            licenceId,
            request.Subject!,
            wildcard ? ["*"] : models.Distinct(StringComparer.Ordinal).ToList(),
            request.NotBefore is null ? null : notBefore,
            request.ExpiresAt is null ? null : expiresAt,
            request.MaxDevices!.Value,
            now,
            null,
            KeyServer.Hash(credential));
        string? client = Client(http);
        await server.Store.WriteAsync(
            s =>
            {
                s.InsertLicence(licence);
                return s.AppendAudit(new AuditEntry(AuditEvents.LicenceCreated, "ok", admin, LicenceId: licenceId, Client: client), now);
            },
            cancellationToken).ConfigureAwait(false);

        ServerLog.AdminChange(server.Logger, admin, AuditEvents.LicenceCreated, licenceId);
        return TypedResults.Created(
            $"/v1/admin/licences/{licenceId}",
            new LicenceCreatedResponse(licence.LicenceId, credential, licence.Subject, licence.Models, Rfc3339.Format(licence.NotBefore), Rfc3339.Format(licence.ExpiresAt), licence.MaxDevices, Rfc3339.Format(licence.CreatedAt), null));
    }

    internal static Ok<ItemsResponse<LicenceResponse>> ListLicences(KeyServer server) =>
        TypedResults.Ok(new ItemsResponse<LicenceResponse>(server.Store.Read(s => s.ListLicences()).ConvertAll(ToResponse)));

    internal static async Task<Results<Ok<LicenceResponse>, ProblemHttpResult>> RevokeLicenceAsync(string licenceId, HttpContext http, KeyServer server, CancellationToken cancellationToken)
    {
        string admin = Authentication.Subject(http.User);
        DateTimeOffset now = server.Now();
        string? client = Client(http);
        LicenceRecord? licence = await server.Store.WriteAsync(
            s =>
            {
                LicenceRecord? existing = s.GetLicence(licenceId);
                if (existing is not null && existing.RevokedAt is null)
                {
                    s.RevokeLicence(licenceId, now);
                    s.AppendAudit(new AuditEntry(AuditEvents.LicenceRevoked, "ok", admin, LicenceId: licenceId, Client: client), now);
                    existing = s.GetLicence(licenceId);
                }

                return existing;
            },
            cancellationToken).ConfigureAwait(false);
        if (licence is null)
        {
            return Problems.Create(Problems.LicenceNotFound, "There is no licence with this id.");
        }

        ServerLog.AdminChange(server.Logger, admin, AuditEvents.LicenceRevoked, licence.LicenceId);
        return TypedResults.Ok(ToResponse(licence));
    }

    internal static Results<Ok<ItemsResponse<DeviceItem>>, ProblemHttpResult> ListDevices(string licenceId, KeyServer server)
    {
        List<DeviceRecord>? devices = server.Store.Read(s => s.GetLicence(licenceId) is null ? null : s.ListDevices(licenceId));
        return devices is null
            ? Problems.Create(Problems.LicenceNotFound, "There is no licence with this id.")
            : TypedResults.Ok(new ItemsResponse<DeviceItem>(devices.ConvertAll(d => new DeviceItem(d.Thumbprint, Rfc3339.Format(d.FirstSeen), Rfc3339.Format(d.LastSeen)))));
    }

    internal static async Task<Ok<RotateResponse>> RotateMasterKeyAsync(HttpContext http, KeyServer server, CancellationToken cancellationToken)
    {
        string admin = Authentication.Subject(http.User);
        DateTimeOffset now = server.Now();
        string? client = Client(http);
        (int version, int rewrapped) = await server.Store.WriteAsync(
            s =>
            {
                // The new key is on disk before anything is wrapped with it.
                int newVersion = server.MasterKeys.AddVersion();
                var rows = s.WrappedKeys();
                byte[] keyBytes = GC.AllocateArray<byte>(ModelKey.SizeInBytes, pinned: true);
                try
                {
                    foreach ((long sequence, string keyId, int masterKeyVersion, byte[] wrapped) in rows)
                    {
                        server.MasterKeys.Unwrap(masterKeyVersion, wrapped, keyId, keyBytes);
                        (int current, byte[] rewrappedKey) = server.MasterKeys.Wrap(keyBytes, keyId);
                        s.UpdateWrappedKey(sequence, current, rewrappedKey);
                    }
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(keyBytes);
                }

                s.AppendAudit(new AuditEntry(AuditEvents.MasterKeyRotated, "ok", admin, Client: client), now);
                return (newVersion, rows.Count);
            },
            cancellationToken).ConfigureAwait(false);
        ServerLog.MasterKeyRotated(server.Logger, version, rewrapped);
        return TypedResults.Ok(new RotateResponse(version, rewrapped));
    }

    internal static Results<Ok<AuditPage>, ProblemHttpResult> ListAudit(string? after, string? limit, KeyServer server)
    {
        long afterId = 0;
        int count = 100;
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (after is not null && (!long.TryParse(after, NumberStyles.None, CultureInfo.InvariantCulture, out afterId) || afterId < 0))
        {
            errors["after"] = ["Optional: a record id (a non-negative integer)."];
        }

        if (limit is not null && (!int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out count) || count is < 1 or > 500))
        {
            errors["limit"] = ["Optional: an integer from 1 to 500 (default 100)."];
        }

        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        List<AuditRecord> records = server.Store.Read(s => s.ListAudit(afterId, count));
        List<AuditItem> items = records.ConvertAll(r => new AuditItem(r.Id, Rfc3339.Format(r.At), r.Entry.Event, r.Entry.Subject, r.Entry.LicenceId, r.Entry.ModelId, r.Entry.Version, r.Entry.KeyId, r.Entry.Device, r.Entry.Client, r.Entry.Outcome, r.Hash is null ? null : System.Buffers.Text.Base64Url.EncodeToString(r.Hash)));
        return TypedResults.Ok(new AuditPage(items, items.Count == count ? items[^1].Id : null));
    }

    internal static Results<Ok<AuditVerifyResponse>, ProblemHttpResult> VerifyAudit(string? expectRecords, string? expectHash, KeyServer server)
    {
        long records = 0;
        byte[]? hash = null;
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (expectRecords is not null && (!long.TryParse(expectRecords, NumberStyles.None, CultureInfo.InvariantCulture, out records) || records < 0))
        {
            errors["expectRecords"] = ["Optional, with expectHash: a record count (a non-negative integer) from an earlier verification."];
        }

        if (expectHash is not null)
        {
            hash = KeyServer.DecodeBase64Url(expectHash);
            if (hash is not { Length: AuditChain.HashSize })
            {
                errors["expectHash"] = ["Optional, with expectRecords: base64url of a 32-byte lastHash from an earlier verification."];
            }
        }

        if ((expectRecords is null) != (expectHash is null))
        {
            errors[expectRecords is null ? "expectRecords" : "expectHash"] = ["expectRecords and expectHash go together."];
        }

        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        AuditVerification result = server.Store.Read(s => s.VerifyAudit(expectRecords is null ? null : records, hash));
        return TypedResults.Ok(new AuditVerifyResponse(result.Verified, result.Records, result.LastId, System.Buffers.Text.Base64Url.EncodeToString(result.LastHash), result.FirstBadId, result.Reason));
    }

    /// <summary>The next integer version: one more than the largest all-digit version, or 1.</summary>
    internal static string NextVersion(IEnumerable<string> versions)
    {
        long max = 0;
        foreach (string version in versions)
        {
            if (version.Length <= 18 && version.All(char.IsAsciiDigit) && long.Parse(version, CultureInfo.InvariantCulture) is var number && number > max)
            {
                max = number;
            }
        }

        return (max + 1).ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// <c>{modelId}.{version}.{8 random hex}</c>; when that would pass the 128-character limit of a key id, the
    /// <c>{modelId}.{version}</c> part is cut to fit (the random suffix and the database keep key ids unique).
    /// </summary>
    internal static string NewKeyId(string modelId, string version)
    {
        string prefix = $"{modelId}.{version}";
        const int suffixLength = 1 + 8;
        if (prefix.Length > Identifier.MaxIdLength - suffixLength)
        {
            prefix = prefix[..(Identifier.MaxIdLength - suffixLength)];
        }

        return $"{prefix}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
    }

    private static LicenceResponse ToResponse(LicenceRecord licence) =>
        new(licence.LicenceId, licence.Subject, licence.Models, Rfc3339.Format(licence.NotBefore), Rfc3339.Format(licence.ExpiresAt), licence.MaxDevices, Rfc3339.Format(licence.CreatedAt), Rfc3339.Format(licence.RevokedAt));

    private static string? Client(HttpContext http) => http.Connection.RemoteIpAddress?.ToString();

    /// <summary>A new version's key (disposing zeroes it), or why none was created.</summary>
    private sealed record CreatedVersion(ModelKey? Key, string? Version, string? Problem) : IDisposable
    {
        public void Dispose() => Key?.Dispose();
    }
}
