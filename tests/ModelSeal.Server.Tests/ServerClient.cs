using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ModelSeal.Hpke;

namespace ModelSeal.Server.Tests;

/// <summary>
/// A key server seen from outside, over HTTP (in this process: <see cref="TestServer"/>; in another: <see cref="ServerProcess"/>),
/// with the flows the tests use. The admin credential is read from the file the server wrote it to at first start.
/// </summary>
internal abstract class ServerClient
{
    protected ServerClient(Uri address, string adminCredentialFile)
    {
        Address = address;
        Client = new HttpClient { BaseAddress = Address };
        AdminCredential = File.ReadAllText(adminCredentialFile).Trim();
        Secrets.Add("admin credential", AdminCredential);
    }

    public Uri Address { get; }

    public HttpClient Client { get; }

    public string AdminCredential { get; }

    // ---- HTTP ---------------------------------------------------------------------------------------------------

    public Task<Api> PostAsync(string path, object? body, string? token = null) =>
        SendAsync(HttpMethod.Post, path, body is null ? null : JsonContent(body), token);

    public Task<Api> GetAsync(string path, string? token = null) => SendAsync(HttpMethod.Get, path, null, token);

    public async Task<Api> SendAsync(HttpMethod method, string path, HttpContent? content, string? token)
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        using HttpResponseMessage response = await Client.SendAsync(request, TestContext.Current.CancellationToken);
        return await Api.ReadAsync(response);
    }

    public static StringContent JsonContent(object body) =>
        new(body as string ?? JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    // ---- flows --------------------------------------------------------------------------------------------------

    public async Task<string> AdminTokenAsync()
    {
        Api answer = await PostAsync("/v1/token", new { grantType = "admin", credential = AdminCredential });
        Assert.Equal(HttpStatusCode.OK, answer.Status);
        string token = answer.Json.GetProperty("accessToken").GetString()!;
        Secrets.Add("admin token", token);
        return token;
    }

    public async Task<string> LicenceTokenAsync(Licence licence)
    {
        Api answer = await PostAsync("/v1/token", new { grantType = "licence", licenceId = licence.Id, credential = licence.Credential });
        Assert.Equal(HttpStatusCode.OK, answer.Status);
        string token = answer.Json.GetProperty("accessToken").GetString()!;
        Secrets.Add("licence token", token);
        return token;
    }

    public async Task CreateModelAsync(string admin, string modelId)
    {
        Api answer = await PostAsync("/v1/admin/models", new { modelId }, admin);
        Assert.Equal(HttpStatusCode.Created, answer.Status);
    }

    /// <summary>Creates a version; returns the answer and the data key opened with the publisher's key.</summary>
    public async Task<(Release Answer, ModelKey Key)> CreateVersionAsync(string admin, string modelId, string? version = null, HpkeKeyPair? publisher = null)
    {
        using HpkeKeyPair ownPublisher = HpkeKeyPair.Generate();
        HpkeKeyPair key = publisher ?? ownPublisher;
        object body = version is null
            ? new { publisherPublicKey = Base64Url(key.PublicKey.Encoded.Span), nonce = Nonce(), protocol = 2 }
            : new { version, publisherPublicKey = Base64Url(key.PublicKey.Encoded.Span), nonce = Nonce(), protocol = 2 };
        Api answer = await PostAsync($"/v1/admin/models/{modelId}/versions", body, admin);
        Assert.Equal(HttpStatusCode.Created, answer.Status);
        Release release = Release.From(answer);
        return (release, release.Open(key, "admin"));
    }

    public async Task<Licence> CreateLicenceAsync(string admin, string subject, string[] models, int maxDevices = 5, DateTimeOffset? notBefore = null, DateTimeOffset? expiresAt = null, string? issuer = null)
    {
        var body = new Dictionary<string, object?> { ["subject"] = subject, ["models"] = models, ["maxDevices"] = maxDevices };
        if (issuer is not null)
        {
            body["issuer"] = issuer;
        }

        if (notBefore is { } nb)
        {
            body["notBefore"] = nb.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);
        }

        if (expiresAt is { } ex)
        {
            body["expiresAt"] = ex.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);
        }

        Api answer = await PostAsync("/v1/admin/licences", body, admin);
        Assert.Equal(HttpStatusCode.Created, answer.Status);
        var licence = new Licence(answer.Json.GetProperty("licenceId").GetString()!, answer.Json.GetProperty("credential").GetString() ?? string.Empty, subject);
        if (issuer is null)
        {
            Secrets.Add("licence credential", licence.Credential);
        }

        return licence;
    }

    public Task<Api> ReleaseAsync(string token, string modelId, string version, HpkeKeyPair device) =>
        PostAsync("/v1/keys/release", new { modelId, version, devicePublicKey = Base64Url(device.PublicKey.Encoded.Span), nonce = Nonce(), protocol = 2 }, token);

    /// <summary>Releases and opens the key; asserts 200.</summary>
    public async Task<(Release Answer, ModelKey Key)> ReleaseAndOpenAsync(string token, Licence licence, string modelId, string version, HpkeKeyPair device)
    {
        Api answer = await ReleaseAsync(token, modelId, version, device);
        Assert.True(answer.Status == HttpStatusCode.OK, $"Expected 200, got {(int)answer.Status}: {answer.Text}");
        Release release = Release.From(answer);
        return (release, release.Open(device, licence.Subject));
    }

    public static string Base64Url(ReadOnlySpan<byte> bytes) => System.Buffers.Text.Base64Url.EncodeToString(bytes);

    /// <summary>A fresh 16-byte nonce for a signed request (docs/protocol.md section 2.2).</summary>
    public static string Nonce() => Base64Url(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));

    public static byte[] KeyBytes(ModelKey key)
    {
        byte[] bytes = new byte[ModelKey.SizeInBytes];
        key.Export(bytes);
        return bytes;
    }
}
