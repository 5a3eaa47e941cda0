using System.Buffers.Text;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using ModelSeal.Hpke;

namespace ModelSeal.Protocol;

/// <summary>Why a call to the key server failed.</summary>
internal enum KeyServerFailure
{
    /// <summary>No answer: the server could not be reached or did not answer in time.</summary>
    Unreachable,

    /// <summary>The server answered with an error (<see cref="KeyServerException.Status"/>, <see cref="KeyServerException.Code"/>).</summary>
    Refused,

    /// <summary>The answer is not the JSON the protocol defines.</summary>
    InvalidAnswer,
}

/// <summary>A failed call to the key server; the message names the server and the server's detail, never a secret.</summary>
internal sealed class KeyServerException(KeyServerFailure failure, string message, int? status = null, string? code = null, string? detail = null, Exception? inner = null)
    : Exception(message, inner)
{
    public KeyServerFailure Failure { get; } = failure;

    /// <summary>The HTTP status of a refusal.</summary>
    public int? Status { get; } = status;

    /// <summary>The problem code of a refusal (<see cref="ProblemCodes"/>), when the answer was a ModelSeal problem.</summary>
    public string? Code { get; } = code;

    /// <summary>The server's <c>detail</c> (or title) of a refusal.</summary>
    public string? Detail { get; } = detail;
}

/// <summary>
/// The one client of the key server's token and admin API (docs/protocol.md sections 1 and 3), used by the CLI and the
/// MSBuild task. Admin calls need <see cref="LoginAdminAsync"/> first: the admin credential (read by the caller from a
/// file or the environment, never the command line) is exchanged for a short-lived admin token. Every failure is a
/// <see cref="KeyServerException"/>.
/// </summary>
internal sealed class KeyServerAdminClient : IDisposable
{
    private readonly HttpClient _http;
    private string? _adminToken;
    private AnswerKey? _answerKey;

    /// <exception cref="ArgumentException"><paramref name="server"/> breaks <see cref="ServerAddress"/>'s rule.</exception>
    public KeyServerAdminClient(Uri server, TimeSpan timeout, bool allowInsecureHttp, HttpMessageHandler? handler = null)
    {
        if (ServerAddress.Refusal(server, allowInsecureHttp) is { } refusal)
        {
            throw new ArgumentException(refusal + ".", nameof(server));
        }

        _http = handler is null ? new HttpClient() : new HttpClient(handler, disposeHandler: false);
        _http.BaseAddress = server.AbsoluteUri.EndsWith('/') ? server : new Uri(server.AbsoluteUri + "/");
        _http.Timeout = timeout;
        Server = server;
    }

    public Uri Server { get; }

    /// <summary>
    /// The <c>kid</c> of the server's answer key to accept (docs/protocol.md section 2.2). Null: the key is learned from
    /// the server's JWKS at the first signed answer, which is refused over plain HTTP to a host that is not loopback.
    /// </summary>
    public string? PinnedAnswerKeyId { get; init; }

    /// <summary>The <c>kid</c> of the answer key that signed this client's answers (null before the first).</summary>
    public string? AnswerKeyId => _answerKey?.KeyId;

    /// <summary>The admin token's subject (null before <see cref="LoginAdminAsync"/>): the HPKE binding of keys sealed to the publisher includes it.</summary>
    public string? AdminSubject { get; private set; }

    public void Dispose()
    {
        _http.Dispose();
        _answerKey?.Dispose();
    }

    /// <summary>Gets an admin token for <paramref name="credential"/>.</summary>
    public async Task LoginAdminAsync(string credential, CancellationToken cancellationToken)
    {
        TokenResponse answer = await SendAsync(HttpMethod.Post, "v1/token", new TokenRequest("admin", null, credential), ProtocolJson.Default.TokenRequest, ProtocolJson.Default.TokenResponse, authorize: false, cancellationToken).ConfigureAwait(false);
        AdminSubject = TokenClaims.SubjectOf(answer.AccessToken)
            ?? throw new KeyServerException(KeyServerFailure.InvalidAnswer, $"the key server at {Server} issued an admin token without a subject.");
        _adminToken = answer.AccessToken;
    }

    /// <summary>Gets a device token for a licence.</summary>
    public Task<TokenResponse> IssueLicenceTokenAsync(string licenceId, string credential, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Post, "v1/token", new TokenRequest("licence", licenceId, credential), ProtocolJson.Default.TokenRequest, ProtocolJson.Default.TokenResponse, authorize: false, cancellationToken);

    public Task<ModelCreatedResponse> CreateModelAsync(string modelId, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Post, "v1/admin/models", new CreateModelRequest(modelId), ProtocolJson.Default.CreateModelRequest, ProtocolJson.Default.ModelCreatedResponse, authorize: true, cancellationToken);

    public Task<ItemsResponse<ModelItem>> ListModelsAsync(CancellationToken cancellationToken) =>
        GetAsync("v1/admin/models", ProtocolJson.Default.ItemsResponseModelItem, cancellationToken);

    /// <summary>Creates a version (and the model, when it does not exist yet) with a new data key sealed to <paramref name="publisherPublicKey"/>.</summary>
    private Task<ReleaseResponse> CreateVersionAsync(string modelId, string? version, ReadOnlySpan<byte> publisherPublicKey, ReadOnlySpan<byte> nonce, CancellationToken cancellationToken) =>
        SendAsync(
            HttpMethod.Post,
            $"v1/admin/models/{Uri.EscapeDataString(modelId)}/versions",
            new CreateVersionRequest(version, Base64Url.EncodeToString(publisherPublicKey), Base64Url.EncodeToString(nonce), SignedAnswers.ProtocolVersion),
            ProtocolJson.Default.CreateVersionRequest,
            ProtocolJson.Default.ReleaseResponse,
            authorize: true,
            cancellationToken);

    /// <summary>
    /// The server's answer key: the pinned one, or learned from the JWKS over HTTPS or loopback (kept for this client's
    /// lifetime, so every later answer must come from the same key).
    /// </summary>
    private async Task<AnswerKey> AnswerKeyAsync(CancellationToken cancellationToken)
    {
        if (_answerKey is { } known)
        {
            return known;
        }

        if (PinnedAnswerKeyId is null && Server.Scheme == Uri.UriSchemeHttp && !Server.IsLoopback)
        {
            throw new KeyServerException(KeyServerFailure.InvalidAnswer, $"the key server at {Server} is reached over plain HTTP, so its answer key cannot be learned safely; pin it (the kid of the JWKS key with \"purpose\": \"answer\", shown by `modelseal serve` at start).");
        }

        JwksResponse jwks = await SendAsync<object, JwksResponse>(HttpMethod.Get, ".well-known/jwks.json", null, null, ProtocolJson.Default.JwksResponse, authorize: false, cancellationToken).ConfigureAwait(false);
        _answerKey = SignedAnswers.FindAnswerKey(jwks, PinnedAnswerKeyId) ?? throw new KeyServerException(
            KeyServerFailure.InvalidAnswer,
            PinnedAnswerKeyId is null
                ? $"the key server at {Server} publishes no answer key in its JWKS (an older server, or not a ModelSeal key server)."
                : $"the key server at {Server} does not publish the pinned answer key '{PinnedAnswerKeyId}' (another server, or its answer key was replaced).");
        return _answerKey;
    }

    /// <summary>
    /// Publishes a new version (creating the model when it does not exist yet) and opens its data key with a publisher
    /// key pair that exists only for this call: what <c>modelseal encrypt --server</c> and the MSBuild task both do.
    /// </summary>
    /// <returns>The data key (the caller disposes it) and the version, the requested one or the server's number.</returns>
    public async Task<(ModelKey Key, string Version)> PublishVersionAsync(string modelId, string? version, CancellationToken cancellationToken)
    {
        string subject = AdminSubject ?? throw new InvalidOperationException("LoginAdminAsync first.");
        AnswerKey answerKey = await AnswerKeyAsync(cancellationToken).ConfigureAwait(false);
        using HpkeKeyPair publisher = HpkeKeyPair.Generate();
        byte[] nonce = SignedAnswers.NewNonce();
        ReleaseResponse answer = await CreateVersionAsync(modelId, version, publisher.PublicKey.Encoded.Span, nonce, cancellationToken).ConfigureAwait(false);
        if (answer.ModelId != modelId || (version is not null && answer.Version != version) || answer.Suite != KeyRelease.Suite
            || !Rfc3339.TryParse(answer.LeaseExpiresAt, out DateTimeOffset leaseExpiresAt))
        {
            throw new KeyServerException(KeyServerFailure.InvalidAnswer, $"the key server at {Server} answered the new version of '{modelId}' with another model, version, suite or an invalid lease time.");
        }

        byte[] enc, sealedKey;
        try
        {
            enc = Base64Url.DecodeFromChars(answer.Enc);
            sealedKey = Base64Url.DecodeFromChars(answer.SealedKey);
        }
        catch (FormatException e)
        {
            throw new KeyServerException(KeyServerFailure.InvalidAnswer, $"the key server's answer for '{modelId}' version '{answer.Version}' is not base64url.", inner: e);
        }

        byte[] statement = SignedAnswers.Released(nonce, publisher.PublicKey.Encoded.Span, answer.ModelId, answer.Version, answer.KeyId, subject, leaseExpiresAt, enc, sealedKey);
        if (answer.Kid != answerKey.KeyId || !SignedAnswers.Verify(answerKey.PublicKey, statement, answer.Signature))
        {
            throw new KeyServerException(KeyServerFailure.InvalidAnswer, $"the answer for '{modelId}' version '{answer.Version}' is not signed by the key server's answer key '{answerKey.KeyId}' for this request: something between this machine and {Server} answered in its place. Nothing was sealed.");
        }

        try
        {
            ModelKey key = KeyRelease.Open(publisher, enc, sealedKey, answer.ModelId, answer.Version, answer.KeyId, subject, leaseExpiresAt);
            return (key, answer.Version);
        }
        catch (HpkeOpenException e)
        {
            throw new KeyServerException(KeyServerFailure.InvalidAnswer, $"the key server's answer for '{modelId}' version '{answer.Version}' does not open with this run's publisher key.", inner: e);
        }
    }

    public Task<LicenceCreatedResponse> CreateLicenceAsync(CreateLicenceRequest request, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Post, "v1/admin/licences", request, ProtocolJson.Default.CreateLicenceRequest, ProtocolJson.Default.LicenceCreatedResponse, authorize: true, cancellationToken);

    public Task<LicenceResponse> RevokeLicenceAsync(string licenceId, CancellationToken cancellationToken) =>
        SendAsync<object, LicenceResponse>(HttpMethod.Post, $"v1/admin/licences/{Uri.EscapeDataString(licenceId)}/revoke", null, null, ProtocolJson.Default.LicenceResponse, authorize: true, cancellationToken);

    public Task<ItemsResponse<LicenceResponse>> ListLicencesAsync(CancellationToken cancellationToken) =>
        GetAsync("v1/admin/licences", ProtocolJson.Default.ItemsResponseLicenceResponse, cancellationToken);

    /// <summary>A page of the audit log after record <paramref name="after"/>, only the records that match every filter given.</summary>
    public Task<AuditPage> ReadAuditAsync(long? after, int limit, string? licenceId, string? subject, string? modelId, string? auditEvent, DateTimeOffset? since, DateTimeOffset? until, CancellationToken cancellationToken) =>
        GetAsync(
            $"v1/admin/audit?limit={limit}" + (after is { } a ? $"&after={a}" : string.Empty)
                + Query(("licenceId", licenceId), ("subject", subject), ("modelId", modelId), ("event", auditEvent), ("since", Rfc3339.Format(since)), ("until", Rfc3339.Format(until))),
            ProtocolJson.Default.AuditPage,
            cancellationToken);

    /// <summary>Disables (<paramref name="action"/> <c>disable</c>), enables or destroys a model version.</summary>
    public Task<StateResponse> ChangeVersionStateAsync(string modelId, string version, string action, CancellationToken cancellationToken) =>
        SendAsync<object, StateResponse>(HttpMethod.Post, $"v1/admin/models/{Uri.EscapeDataString(modelId)}/versions/{Uri.EscapeDataString(version)}/{Uri.EscapeDataString(action)}", null, null, ProtocolJson.Default.StateResponse, authorize: true, cancellationToken);

    /// <summary>Deletes a model whose versions are all destroyed.</summary>
    public Task<ModelDeletedResponse> DeleteModelAsync(string modelId, CancellationToken cancellationToken) =>
        SendAsync<object, ModelDeletedResponse>(HttpMethod.Delete, $"v1/admin/models/{Uri.EscapeDataString(modelId)}", null, null, ProtocolJson.Default.ModelDeletedResponse, authorize: true, cancellationToken);

    public Task<ItemsResponse<DeviceItem>> ListDevicesAsync(string licenceId, CancellationToken cancellationToken) =>
        GetAsync($"v1/admin/licences/{Uri.EscapeDataString(licenceId)}/devices", ProtocolJson.Default.ItemsResponseDeviceItem, cancellationToken);

    /// <summary>Removes a device from a licence (freeing its slot); answers the removed device.</summary>
    public Task<DeviceItem> RemoveDeviceAsync(string licenceId, string thumbprint, CancellationToken cancellationToken) =>
        SendAsync<object, DeviceItem>(HttpMethod.Delete, $"v1/admin/licences/{Uri.EscapeDataString(licenceId)}/devices/{Uri.EscapeDataString(thumbprint)}", null, null, ProtocolJson.Default.DeviceItem, authorize: true, cancellationToken);

    /// <summary>Changes a licence's end of validity, device limit or models (the members of <paramref name="request"/> given).</summary>
    public Task<LicenceResponse> EditLicenceAsync(string licenceId, EditLicenceRequest request, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Patch, $"v1/admin/licences/{Uri.EscapeDataString(licenceId)}", request, ProtocolJson.Default.EditLicenceRequest, ProtocolJson.Default.LicenceResponse, authorize: true, cancellationToken);

    /// <summary>A page of users after user <paramref name="after"/>, only those of <paramref name="issuer"/> and with <paramref name="subject"/> when given.</summary>
    public Task<UserPageResponse> ListUsersAsync(long? after, int limit, string? issuer, string? subject, CancellationToken cancellationToken) =>
        GetAsync($"v1/admin/users?limit={limit}" + (after is { } a ? $"&after={a}" : string.Empty) + Query(("issuer", issuer), ("subject", subject)), ProtocolJson.Default.UserPageResponse, cancellationToken);

    /// <summary>A user, its devices and its latest key releases and refusals.</summary>
    public Task<UserDetailResponse> ShowUserAsync(long userId, CancellationToken cancellationToken) =>
        GetAsync($"v1/admin/users/{userId}", ProtocolJson.Default.UserDetailResponse, cancellationToken);

    /// <summary>Blocks (<paramref name="block"/>) or unblocks a user; answers the user.</summary>
    public Task<UserItem> SetUserBlockedAsync(long userId, bool block, CancellationToken cancellationToken) =>
        SendAsync<object, UserItem>(HttpMethod.Post, $"v1/admin/users/{userId}/{(block ? "block" : "unblock")}", null, null, ProtocolJson.Default.UserItem, authorize: true, cancellationToken);

    /// <summary>Removes a device from a user (freeing its slot); answers the removed device.</summary>
    public Task<UserDeviceItem> RemoveUserDeviceAsync(long userId, string thumbprint, CancellationToken cancellationToken) =>
        SendAsync<object, UserDeviceItem>(HttpMethod.Delete, $"v1/admin/users/{userId}/devices/{Uri.EscapeDataString(thumbprint)}", null, null, ProtocolJson.Default.UserDeviceItem, authorize: true, cancellationToken);

    /// <summary>
    /// Re-verifies every accepted device attestation now (Android: the stored chain against the current status list,
    /// roots and its policy) and answers how many were checked and those newly rejected, with the reason.
    /// </summary>
    public Task<ReverifyResponse> ReverifyAttestationsAsync(CancellationToken cancellationToken) =>
        SendAsync<object, ReverifyResponse>(HttpMethod.Post, "v1/admin/attestations/reverify", null, null, ProtocolJson.Default.ReverifyResponse, authorize: true, cancellationToken);

    /// <summary>Adds a new master key and rewraps every data key with it (online).</summary>
    public Task<RotateResponse> RotateMasterKeyAsync(CancellationToken cancellationToken) =>
        SendAsync<object, RotateResponse>(HttpMethod.Post, "v1/admin/master-key/rotate", null, null, ProtocolJson.Default.RotateResponse, authorize: true, cancellationToken);

    /// <summary>Key releases and refusals per model per UTC day, for records in [<paramref name="since"/>, <paramref name="until"/>).</summary>
    public Task<UsageResponse> ReadUsageAsync(DateTimeOffset? since, DateTimeOffset? until, CancellationToken cancellationToken)
    {
        string query = Query(("since", Rfc3339.Format(since)), ("until", Rfc3339.Format(until)));
        return GetAsync(query.Length == 0 ? "v1/admin/usage" : "v1/admin/usage?" + query[1..], ProtocolJson.Default.UsageResponse, cancellationToken);
    }

    /// <summary>The given query parameters, each as <c>&amp;name=value</c> (escaped).</summary>
    private static string Query(params ReadOnlySpan<(string Name, string? Value)> parameters)
    {
        var query = new System.Text.StringBuilder();
        foreach ((string name, string? value) in parameters)
        {
            if (value is not null)
            {
                query.Append('&').Append(name).Append('=').Append(Uri.EscapeDataString(value));
            }
        }

        return query.ToString();
    }

    /// <summary>Walks the audit hash chain on the server; with an earlier head (records, lastHash) also checks it is still there.</summary>
    public Task<AuditVerifyResponse> VerifyAuditAsync(long? expectRecords, string? expectHash, CancellationToken cancellationToken) =>
        GetAsync(
            "v1/admin/audit/verify" + (expectRecords is { } n && expectHash is not null ? $"?expectRecords={n}&expectHash={Uri.EscapeDataString(expectHash)}" : string.Empty),
            ProtocolJson.Default.AuditVerifyResponse,
            cancellationToken);

    private Task<TAnswer> GetAsync<TAnswer>(string path, JsonTypeInfo<TAnswer> answerType, CancellationToken cancellationToken) =>
        SendAsync<object, TAnswer>(HttpMethod.Get, path, null, null, answerType, authorize: true, cancellationToken);

    private async Task<TAnswer> SendAsync<TRequest, TAnswer>(HttpMethod method, string path, TRequest? body, JsonTypeInfo<TRequest>? requestType, JsonTypeInfo<TAnswer> answerType, bool authorize, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null && requestType is not null)
        {
            request.Content = JsonContent.Create(body, requestType);
        }

        if (authorize)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _adminToken ?? throw new InvalidOperationException("LoginAdminAsync first."));
        }

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new KeyServerException(KeyServerFailure.Unreachable, $"cannot reach the key server at {Server}: {e.Message}", inner: e);
        }
        catch (TaskCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new KeyServerException(KeyServerFailure.Unreachable, $"the key server at {Server} did not answer within {_http.Timeout.TotalSeconds:0} s.", inner: e);
        }

        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                throw await RefusalAsync(response, cancellationToken).ConfigureAwait(false);
            }

            try
            {
                return await response.Content.ReadFromJsonAsync(answerType, cancellationToken).ConfigureAwait(false)
                    ?? throw new JsonException("null");
            }
            catch (Exception e) when (e is JsonException or NotSupportedException)
            {
                throw new KeyServerException(KeyServerFailure.InvalidAnswer, $"the key server at {Server} sent an answer that is not the protocol's JSON ({(int)response.StatusCode}).", inner: e);
            }
        }
    }

    private async Task<KeyServerException> RefusalAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        int status = (int)response.StatusCode;
        ProblemResponse? problem = null;
        try
        {
            problem = await response.Content.ReadFromJsonAsync(ProtocolJson.Default.ProblemResponse, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is JsonException or NotSupportedException)
        {
            // Not a problem document (a proxy's page, say): the status alone tells.
        }

        string? code = problem?.Code;
        string detail = problem?.Detail ?? problem?.Title ?? response.ReasonPhrase ?? "no details";
        return new KeyServerException(KeyServerFailure.Refused, $"the key server at {Server} refused: {detail} ({status}{(code is null ? string.Empty : " " + code)}).", status, code, detail);
    }
}
