using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelSeal.Cli.KeyServer;

/// <summary>
/// The CLI's client for the key server's admin and token API (docs/protocol.md). Admin calls exchange the admin
/// credential (from a file or the environment, never the command line) for a short-lived admin token first.
/// Server refusals become <see cref="CliException"/>s with exit code <see cref="ExitCodes.ServerError"/>.
/// </summary>
internal sealed class KeyServerClient : IDisposable
{
    /// <summary>The server used when neither --server nor MODELSEAL_SERVER says otherwise.</summary>
    public const string DefaultServer = "http://127.0.0.1:5380";

    private readonly HttpClient _http;
    private string? _adminToken;

    public KeyServerClient(Uri server, HttpMessageHandler? handler = null)
    {
        _http = handler is null ? new HttpClient() : new HttpClient(handler, disposeHandler: false);
        _http.BaseAddress = server;
        _http.Timeout = TimeSpan.FromSeconds(100);
        Server = server;
    }

    public Uri Server { get; }

    /// <summary>The subject of the admin token (the HPKE binding of keys sealed to the publisher uses it).</summary>
    public string AdminSubject { get; private set; } = "admin";

    public void Dispose() => _http.Dispose();

    /// <summary>Gets an admin token for <paramref name="credential"/>.</summary>
    public async Task LoginAdminAsync(string credential, CancellationToken cancellationToken)
    {
        TokenAnswer answer = await SendAsync(HttpMethod.Post, "v1/token", new TokenRequest("admin", null, credential), ServerJson.Default.TokenRequest, ServerJson.Default.TokenAnswer, authorize: false, cancellationToken).ConfigureAwait(false);
        _adminToken = answer.AccessToken;
        AdminSubject = SubjectOf(answer.AccessToken);
    }

    /// <summary>Gets a device token for a licence (the <c>token issue</c> convenience).</summary>
    public Task<TokenAnswer> IssueLicenceTokenAsync(string licenceId, string credential, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Post, "v1/token", new TokenRequest("licence", licenceId, credential), ServerJson.Default.TokenRequest, ServerJson.Default.TokenAnswer, authorize: false, cancellationToken);

    public Task<ModelAnswer> AddModelAsync(string modelId, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Post, "v1/admin/models", new AddModelRequest(modelId), ServerJson.Default.AddModelRequest, ServerJson.Default.ModelAnswer, authorize: true, cancellationToken);

    public Task<ItemsAnswer<ModelAnswer>> ListModelsAsync(CancellationToken cancellationToken) =>
        SendAsync<object, ItemsAnswer<ModelAnswer>>(HttpMethod.Get, "v1/admin/models", null, null, ServerJson.Default.ItemsAnswerModelAnswer, authorize: true, cancellationToken);

    public Task<ReleaseAnswer> AddVersionAsync(string modelId, string? version, byte[] publisherPublicKey, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Post, $"v1/admin/models/{Uri.EscapeDataString(modelId)}/versions", new AddVersionRequest(version, System.Buffers.Text.Base64Url.EncodeToString(publisherPublicKey)), ServerJson.Default.AddVersionRequest, ServerJson.Default.ReleaseAnswer, authorize: true, cancellationToken);

    public Task<LicenceAnswer> AddLicenceAsync(AddLicenceRequest request, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Post, "v1/admin/licences", request, ServerJson.Default.AddLicenceRequest, ServerJson.Default.LicenceAnswer, authorize: true, cancellationToken);

    public Task<LicenceAnswer> RevokeLicenceAsync(string licenceId, CancellationToken cancellationToken) =>
        SendAsync<object, LicenceAnswer>(HttpMethod.Post, $"v1/admin/licences/{Uri.EscapeDataString(licenceId)}/revoke", null, null, ServerJson.Default.LicenceAnswer, authorize: true, cancellationToken);

    public Task<ItemsAnswer<LicenceAnswer>> ListLicencesAsync(CancellationToken cancellationToken) =>
        SendAsync<object, ItemsAnswer<LicenceAnswer>>(HttpMethod.Get, "v1/admin/licences", null, null, ServerJson.Default.ItemsAnswerLicenceAnswer, authorize: true, cancellationToken);

    public Task<AuditPage> ReadAuditAsync(long? after, int limit, CancellationToken cancellationToken) =>
        SendAsync<object, AuditPage>(HttpMethod.Get, $"v1/admin/audit?limit={limit}" + (after is { } a ? $"&after={a}" : string.Empty), null, null, ServerJson.Default.AuditPage, authorize: true, cancellationToken);

    /// <summary>Walks the audit hash chain on the server; with an earlier head (records, lastHash) also checks it is still there.</summary>
    public Task<AuditVerification> VerifyAuditAsync(long? expectRecords, string? expectHash, CancellationToken cancellationToken) =>
        SendAsync<object, AuditVerification>(
            HttpMethod.Get,
            "v1/admin/audit/verify" + (expectRecords is { } n && expectHash is not null ? $"?expectRecords={n}&expectHash={Uri.EscapeDataString(expectHash)}" : string.Empty),
            null,
            null,
            ServerJson.Default.AuditVerification,
            authorize: true,
            cancellationToken);

    private async Task<TAnswer> SendAsync<TRequest, TAnswer>(
        HttpMethod method,
        string path,
        TRequest? body,
        System.Text.Json.Serialization.Metadata.JsonTypeInfo<TRequest>? requestType,
        System.Text.Json.Serialization.Metadata.JsonTypeInfo<TAnswer> answerType,
        bool authorize,
        CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null && requestType is not null)
        {
            request.Content = JsonContent.Create(body, requestType);
        }

        if (authorize)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _adminToken ?? throw new InvalidOperationException("Not logged in."));
        }

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new CliException(ExitCodes.ServerError, $"cannot reach the key server at {Server}: {e.Message}", "check --server (or MODELSEAL_SERVER) and that 'modelseal serve' is running.", e);
        }

        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                throw await RefusalAsync(response, cancellationToken).ConfigureAwait(false);
            }

            return await response.Content.ReadFromJsonAsync(answerType, cancellationToken).ConfigureAwait(false)
                ?? throw new CliException(ExitCodes.ServerError, $"the key server at {Server} sent an empty answer.", "check the server's logs.");
        }
    }

    private static async Task<CliException> RefusalAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        int status = (int)response.StatusCode;
        Problem? problem = null;
        try
        {
            problem = await response.Content.ReadFromJsonAsync(ServerJson.Default.Problem, cancellationToken).ConfigureAwait(false);
        }
        catch (JsonException)
        {
        }

        string code = problem?.Type is { } type ? type[(type.LastIndexOf('/') + 1)..] : status.ToString(System.Globalization.CultureInfo.InvariantCulture);
        string detail = problem?.Detail ?? problem?.Title ?? response.ReasonPhrase ?? "no details";
        string hint = status switch
        {
            401 => "check the admin credential (--admin-credential-file, MODELSEAL_ADMIN_CREDENTIAL_FILE or MODELSEAL_ADMIN_CREDENTIAL).",
            403 => "the server does not allow this for this credential or licence.",
            404 => "check the ids: 'modelseal model list' and 'modelseal license list' show what exists.",
            409 => "it exists already.",
            429 => "slow down: the server rate-limits requests.",
            _ => "see the server's answer above; its logs have more.",
        };
        return new CliException(ExitCodes.ServerError, $"the key server refused: {detail} ({status} {code}).", hint);
    }

    /// <summary>The <c>sub</c> claim of a JWT (read, not verified: the server verifies its own tokens).</summary>
    private static string SubjectOf(string token)
    {
        string[] parts = token.Split('.');
        if (parts.Length == 3)
        {
            using JsonDocument payload = JsonDocument.Parse(System.Buffers.Text.Base64Url.DecodeFromChars(parts[1]));
            if (payload.RootElement.TryGetProperty("sub", out JsonElement sub) && sub.GetString() is { Length: > 0 } subject)
            {
                return subject;
            }
        }

        throw new CliException(ExitCodes.ServerError, "the key server issued a token without a subject.", "check the server version.");
    }
}

internal sealed record TokenRequest(string GrantType, string? LicenceId, string Credential);

internal sealed record TokenAnswer(string AccessToken, string TokenType, int ExpiresIn);

internal sealed record AddModelRequest(string ModelId);

internal sealed record VersionAnswer(string Version, string KeyId, string State, DateTimeOffset CreatedAt);

internal sealed record ModelAnswer(string ModelId, DateTimeOffset CreatedAt, IReadOnlyList<VersionAnswer>? Versions);

internal sealed record AddVersionRequest(string? Version, string PublisherPublicKey);

internal sealed record ReleaseAnswer(string ModelId, string Version, string KeyId, string Suite, string Enc, string SealedKey, DateTimeOffset LeaseExpiresAt);

internal sealed record AddLicenceRequest(string Subject, IReadOnlyList<string> Models, DateTimeOffset? NotBefore, DateTimeOffset? ExpiresAt, int MaxDevices);

internal sealed record LicenceAnswer(string LicenceId, string Subject, IReadOnlyList<string> Models, DateTimeOffset? NotBefore, DateTimeOffset? ExpiresAt, int MaxDevices, DateTimeOffset? RevokedAt, DateTimeOffset CreatedAt, string? Credential);

internal sealed record ItemsAnswer<T>(IReadOnlyList<T> Items);

internal sealed record AuditRecord(long Id, DateTimeOffset At, string Event, string? Subject, string? LicenceId, string? ModelId, string? Version, string? KeyId, string? Device, string? Client, string? Outcome, string? Hash);

internal sealed record AuditVerification(bool Verified, long Records, long? LastId, string LastHash, long? FirstBadId, string? Reason);

internal sealed record AuditPage(IReadOnlyList<AuditRecord> Items, long? Next);

internal sealed record Problem(string? Type, string? Title, int? Status, string? Detail);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, WriteIndented = false)]
[JsonSerializable(typeof(TokenRequest))]
[JsonSerializable(typeof(TokenAnswer))]
[JsonSerializable(typeof(AddModelRequest))]
[JsonSerializable(typeof(ModelAnswer))]
[JsonSerializable(typeof(ItemsAnswer<ModelAnswer>))]
[JsonSerializable(typeof(AddVersionRequest))]
[JsonSerializable(typeof(ReleaseAnswer))]
[JsonSerializable(typeof(AddLicenceRequest))]
[JsonSerializable(typeof(LicenceAnswer))]
[JsonSerializable(typeof(ItemsAnswer<LicenceAnswer>))]
[JsonSerializable(typeof(AuditPage))]
[JsonSerializable(typeof(AuditVerification))]
[JsonSerializable(typeof(Problem))]
internal sealed partial class ServerJson : JsonSerializerContext;
