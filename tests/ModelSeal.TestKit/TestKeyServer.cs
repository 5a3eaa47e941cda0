using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using ModelSeal.Hpke;
using ModelSeal.Server;
using ModelSeal.Server.Configuration;

namespace ModelSeal.TestKit;

/// <summary>A licence created on a <see cref="TestKeyServer"/>; its credential is also in an owner-only file.</summary>
public sealed record TestLicence(string LicenceId, string Subject, string Credential, string CredentialFile);

/// <summary>A model version created on a <see cref="TestKeyServer"/> and a plaintext model sealed with its data key.</summary>
public sealed record PublishedModel(string ModelId, string Version, string KeyId, SealedModelHeader Header, byte[] Sealed);

/// <summary>
/// The real key server in this process: Kestrel on 127.0.0.1 (an ephemeral port) with a data directory of its own (a
/// new temporary one unless given), and the admin flows the tests need (models, versions, licences), logged in with
/// the admin credential the server wrote at first start (beside the data directory, <see cref="CredentialFileFor"/>). Disposing stops the server and deletes its temporary directory.
/// </summary>
public sealed class TestKeyServer : IAsyncDisposable
{
    private readonly SemaphoreSlim _login = new(1, 1);
    private HttpClient? _admin;
    private bool _stopped;

    private TestKeyServer(WebApplication app, ServerOptions options, TempDirectory directory, bool ownsDataDirectory)
    {
        App = app;
        Options = options;
        Directory = directory;
        OwnsDataDirectory = ownsDataDirectory;
        Url = app.Urls.Single();
    }

    public WebApplication App { get; }

    /// <summary>The options the server runs with (after the caller's changes).</summary>
    public ServerOptions Options { get; }

    /// <summary>The server's address, such as <c>http://127.0.0.1:41234</c> (no trailing slash).</summary>
    public string Url { get; }

    /// <summary><see cref="Url"/> as a <see cref="Uri"/>.</summary>
    public Uri Address => new(Url);

    public string DataDirectory => Options.DataDirectory;

    /// <summary>True when the data directory is the server's own (in <see cref="Directory"/>), deleted on dispose.</summary>
    public bool OwnsDataDirectory { get; }

    /// <summary>A temporary directory of the server's: its data directory unless one was given, and licence credential files.</summary>
    public TempDirectory Directory { get; }

    /// <summary>
    /// The file the server wrote its admin credential to at first start (<see cref="ServerOptions.AdminCredentialOut"/>;
    /// by default <see cref="CredentialFileFor"/> of the data directory, so that a restart on the same directory finds it).
    /// </summary>
    public string AdminCredentialFile => Options.AdminCredentialOut!;

    /// <summary>The default admin credential file of a data directory: <c>DIR.admin.credential</c>, beside it (never inside).</summary>
    public static string CredentialFileFor(string dataDirectory) =>
        Path.TrimEndingDirectorySeparator(Path.GetFullPath(dataDirectory)) + ".admin.credential";

    public string AdminCredential => File.ReadAllText(AdminCredentialFile).Trim();

    /// <summary>
    /// Starts a key server. <paramref name="configure"/> changes the options (data directory and loopback URL already
    /// set); <paramref name="logging"/> sets up logging (default: none).
    /// </summary>
    public static async Task<TestKeyServer> StartAsync(
        Action<ServerOptions>? configure = null,
        string? dataDirectory = null,
        Action<ILoggingBuilder>? logging = null,
        CancellationToken cancellationToken = default)
    {
        var directory = new TempDirectory("modelseal-key-server-");
        try
        {
            var options = new ServerOptions { DataDirectory = dataDirectory ?? directory.Sub("data"), Urls = "http://127.0.0.1:0" };
            configure?.Invoke(options);
            options.AdminCredentialOut ??= CredentialFileFor(options.DataDirectory);
            WebApplication app = ServerHost.Build(options, logging ?? (builder => builder.ClearProviders()));
            try
            {
                await app.StartAsync(cancellationToken);
            }
            catch
            {
                await app.DisposeAsync();
                throw;
            }

            return new TestKeyServer(app, options, directory, ownsDataDirectory: dataDirectory is null);
        }
        catch
        {
            directory.Dispose();
            throw;
        }
    }

    /// <summary>An HttpClient for <see cref="Url"/> holding an admin token (logged in once, on first use).</summary>
    public async Task<HttpClient> AdminAsync(CancellationToken cancellationToken = default)
    {
        await _login.WaitAsync(cancellationToken);
        try
        {
            if (_admin is null)
            {
                var admin = new HttpClient { BaseAddress = Address };
                try
                {
                    JsonElement token = await PostAsync(admin, "/v1/token", new { grantType = "admin", credential = AdminCredential }, cancellationToken);
                    admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token.GetProperty("accessToken").GetString());
                }
                catch
                {
                    admin.Dispose();
                    throw;
                }

                _admin = admin;
            }

            return _admin;
        }
        finally
        {
            _login.Release();
        }
    }

    /// <summary>Registers a model id.</summary>
    public async Task CreateModelAsync(string modelId, CancellationToken cancellationToken = default) =>
        await PostAsync(await AdminAsync(cancellationToken), "/v1/admin/models", new { modelId }, cancellationToken);

    /// <summary>
    /// As a publisher: registers <paramref name="modelId"/>, creates its first version (the server makes the data key
    /// and seals it to a publisher key of this call's) and seals <paramref name="plaintext"/> with that key in memory.
    /// </summary>
    public async Task<PublishedModel> PublishAsync(string modelId, byte[] plaintext, CancellationToken cancellationToken = default)
    {
        await CreateModelAsync(modelId, cancellationToken);
        using HpkeKeyPair publisher = HpkeKeyPair.Generate();
        JsonElement v = await PostAsync(
            await AdminAsync(cancellationToken),
            $"/v1/admin/models/{Uri.EscapeDataString(modelId)}/versions",
            new { publisherPublicKey = System.Buffers.Text.Base64Url.EncodeToString(publisher.PublicKey.Encoded.Span), nonce = System.Buffers.Text.Base64Url.EncodeToString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16)), protocol = 2 },
            cancellationToken);
        string version = v.GetProperty("version").GetString()!;
        string keyId = v.GetProperty("keyId").GetString()!;
        using ModelKey key = KeyRelease.Open(
            publisher,
            System.Buffers.Text.Base64Url.DecodeFromChars(v.GetProperty("enc").GetString()),
            System.Buffers.Text.Base64Url.DecodeFromChars(v.GetProperty("sealedKey").GetString()),
            modelId,
            version,
            keyId,
            "admin",
            DateTimeOffset.Parse(v.GetProperty("leaseExpiresAt").GetString()!, CultureInfo.InvariantCulture));

        using var sealedStream = new MemoryStream();
        SealedModelHeader header = await SealedModel.SealAsync(
            new MemoryStream(plaintext, writable: false), sealedStream, key, new SealOptions { ModelId = modelId, ModelVersion = version }, cancellationToken: cancellationToken);
        return new PublishedModel(modelId, version, keyId, header, sealedStream.ToArray());
    }

    /// <summary>Creates a licence and writes its credential to an owner-only file in <see cref="Directory"/>.</summary>
    public async Task<TestLicence> CreateLicenceAsync(string subject, IReadOnlyList<string> models, int maxDevices = 5, CancellationToken cancellationToken = default)
    {
        JsonElement licence = await PostAsync(await AdminAsync(cancellationToken), "/v1/admin/licences", new { subject, models, maxDevices }, cancellationToken);
        string licenceId = licence.GetProperty("licenceId").GetString()!;
        string credential = licence.GetProperty("credential").GetString()!;
        string file = Directory.Sub($"{licenceId}.credential");
        OwnerOnlyFile.Write(file, credential);
        return new TestLicence(licenceId, subject, credential, file);
    }

    public async Task RevokeLicenceAsync(string licenceId, CancellationToken cancellationToken = default) =>
        await PostAsync(await AdminAsync(cancellationToken), $"/v1/admin/licences/{Uri.EscapeDataString(licenceId)}/revoke", new { }, cancellationToken);

    /// <summary>Stops the server (the directory stays until dispose); does nothing the second time.</summary>
    public async Task StopAsync()
    {
        if (!_stopped)
        {
            _stopped = true;
            await App.StopAsync(CancellationToken.None);
            await App.DisposeAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _admin?.Dispose();
        _login.Dispose();
        Directory.Dispose();
    }

    /// <summary>POSTs JSON; any answer but 200 or 201 throws with the status and body.</summary>
    private static async Task<JsonElement> PostAsync(HttpClient client, string path, object body, CancellationToken cancellationToken)
    {
        using HttpResponseMessage response = await client.PostAsJsonAsync(path, body, cancellationToken);
        string text = await response.Content.ReadAsStringAsync(cancellationToken);
        if (response.StatusCode is not (System.Net.HttpStatusCode.OK or System.Net.HttpStatusCode.Created))
        {
            throw new HttpRequestException($"{path}: {(int)response.StatusCode} {text}", null, response.StatusCode);
        }

        using var document = JsonDocument.Parse(text);
        return document.RootElement.Clone();
    }
}
