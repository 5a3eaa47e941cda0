using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace ModelSeal.Build;

/// <summary>A refusal or failure of the key server, with a message that contains no secret.</summary>
internal sealed class KeyServerException(string message) : Exception(message);

/// <summary>A new version's data key, sealed to the publisher key (docs/protocol.md §2, §3).</summary>
internal sealed record NewVersion(string ModelId, string Version, string KeyId, byte[] Enc, byte[] SealedKey, DateTimeOffset LeaseExpiresAt);

/// <summary>
/// The few admin calls of the key server's API that sealing needs (docs/protocol.md): the admin token, creating a
/// model when it does not exist yet, and creating a version. A small client of its own: the task assembly must not
/// depend on the CLI or the server (it carries only ModelSeal.dll). JSON is read and written with
/// <see cref="Utf8JsonWriter"/>/<see cref="JsonDocument"/>: a handful of fields, no serializer needed.
/// </summary>
internal sealed class KeyServerAdminClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly string _credential;
    private string? _token;

    public KeyServerAdminClient(Uri server, string credential, HttpMessageHandler? handler = null)
    {
        _http = handler is null ? new HttpClient() : new HttpClient(handler, disposeHandler: false);
        _http.BaseAddress = server.AbsoluteUri.EndsWith('/') ? server : new Uri(server.AbsoluteUri + "/");
        _http.Timeout = TimeSpan.FromSeconds(60);
        Server = _http.BaseAddress;
        _credential = credential;
    }

    public Uri Server { get; }

    /// <summary>The admin token's subject: the HPKE binding of keys sealed to the publisher includes it.</summary>
    public string AdminSubject { get; private set; } = "admin";

    public void Dispose() => _http.Dispose();

    public async Task<NewVersion> AddVersionAsync(string modelId, string? version, byte[] publisherPublicKey, CancellationToken cancellationToken)
    {
        await LoginAsync(cancellationToken).ConfigureAwait(false);
        string path = $"v1/admin/models/{Uri.EscapeDataString(modelId)}/versions";
        byte[] body = Json(w =>
        {
            if (version is not null)
            {
                w.WriteString("version", version);
            }

            w.WriteString("publisherPublicKey", System.Buffers.Text.Base64Url.EncodeToString(publisherPublicKey));
        });
        (HttpStatusCode status, JsonDocument? answer, string? problem) = await SendAsync(path, body, cancellationToken).ConfigureAwait(false);
        if (status == HttpStatusCode.NotFound && problem == "model-not-found")
        {
            answer?.Dispose();
            (HttpStatusCode created, JsonDocument? model, _) = await SendAsync("v1/admin/models", Json(w => w.WriteString("modelId", modelId)), cancellationToken).ConfigureAwait(false);
            model?.Dispose();
            if (created != HttpStatusCode.Created && created != HttpStatusCode.OK && created != HttpStatusCode.Conflict)
            {
                throw new KeyServerException($"the key server at {Server} did not create model '{modelId}' ({(int)created}).");
            }

            (status, answer, problem) = await SendAsync(path, body, cancellationToken).ConfigureAwait(false);
        }

        using (answer)
        {
            if (status == HttpStatusCode.Conflict)
            {
                throw new KeyServerException($"version '{version}' of '{modelId}' exists already on the key server at {Server}, and the server gives an existing version's key only to licensed devices. Give a new ModelVersion, or leave ModelVersion out so that the server numbers the versions.");
            }

            if (status is not (HttpStatusCode.Created or HttpStatusCode.OK) || answer is null)
            {
                throw Refusal(status, problem, answer, $"creating a version of '{modelId}'");
            }

            JsonElement root = answer.RootElement;
            try
            {
                return new NewVersion(
                    Text(root, "modelId"),
                    Text(root, "version"),
                    Text(root, "keyId"),
                    System.Buffers.Text.Base64Url.DecodeFromChars(Text(root, "enc")),
                    System.Buffers.Text.Base64Url.DecodeFromChars(Text(root, "sealedKey")),
                    DateTimeOffset.Parse(Text(root, "leaseExpiresAt"), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind));
            }
            catch (FormatException)
            {
                throw new KeyServerException($"the key server at {Server} sent a malformed version answer.");
            }
        }
    }

    private async Task LoginAsync(CancellationToken cancellationToken)
    {
        if (_token is not null)
        {
            return;
        }

        byte[] body = Json(w =>
        {
            w.WriteString("grantType", "admin");
            w.WriteString("credential", _credential);
        });
        (HttpStatusCode status, JsonDocument? answer, string? problem) = await SendAsync("v1/token", body, cancellationToken, authorize: false).ConfigureAwait(false);
        using (answer)
        {
            if (status != HttpStatusCode.OK || answer is null)
            {
                throw Refusal(status, problem, answer, "the admin login");
            }

            string token = Text(answer.RootElement, "accessToken");
            AdminSubject = SubjectOf(token) ?? throw new KeyServerException($"the key server at {Server} issued an admin token without a subject.");
            _token = token;
        }
    }

    private async Task<(HttpStatusCode Status, JsonDocument? Answer, string? Problem)> SendAsync(string path, byte[] body, CancellationToken cancellationToken, bool authorize = true)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        if (authorize)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _token);
        }

        try
        {
            using HttpResponseMessage response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
            byte[] content = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            JsonDocument? document = null;
            try
            {
                document = content.Length == 0 ? null : JsonDocument.Parse(content);
            }
            catch (JsonException)
            {
            }

            string? problem = null;
            if (!response.IsSuccessStatusCode && document is not null && document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("type", out JsonElement type) && type.GetString() is { } t)
            {
                problem = t[(t.LastIndexOf('/') + 1)..];
            }

            return (response.StatusCode, document, problem);
        }
        catch (HttpRequestException e)
        {
            throw new KeyServerException($"cannot reach the key server at {Server}: {e.Message}");
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new KeyServerException($"the key server at {Server} did not answer within {_http.Timeout.TotalSeconds:0} s.");
        }
    }

    private KeyServerException Refusal(HttpStatusCode status, string? problem, JsonDocument? answer, string what)
    {
        string detail = answer is not null && answer.RootElement.ValueKind == JsonValueKind.Object
            && (answer.RootElement.TryGetProperty("detail", out JsonElement d) || answer.RootElement.TryGetProperty("title", out d))
            && d.ValueKind == JsonValueKind.String ? d.GetString()! : "no details";
        string hint = status == HttpStatusCode.Unauthorized
            ? " Check the admin credential in the environment variable named by ModelSealAdminCredentialVariable."
            : string.Empty;
        return new KeyServerException($"the key server at {Server} refused {what}: {detail} ({(int)status} {problem ?? status.ToString()}).{hint}");
    }

    private string Text(JsonElement root, string name) =>
        root.ValueKind == JsonValueKind.Object && root.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw new KeyServerException($"the key server at {Server} sent an answer without '{name}'.");

    private static byte[] Json(Action<Utf8JsonWriter> write)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
        }

        return buffer.ToArray();
    }

    /// <summary>The <c>sub</c> claim of a JWT (read, not verified: the server verifies its own tokens).</summary>
    private static string? SubjectOf(string token)
    {
        string[] parts = token.Split('.');
        if (parts.Length != 3)
        {
            return null;
        }

        try
        {
            using JsonDocument payload = JsonDocument.Parse(System.Buffers.Text.Base64Url.DecodeFromChars(parts[1]));
            return payload.RootElement.TryGetProperty("sub", out JsonElement sub) && sub.GetString() is { Length: > 0 } subject ? subject : null;
        }
        catch (Exception e) when (e is JsonException or FormatException)
        {
            return null;
        }
    }
}
