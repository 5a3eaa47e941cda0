using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using ModelSeal.Hpke;
using ModelSeal.Server;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;
using ModelSeal.TestKit;

namespace ModelSeal.LoadTest;

/// <summary>
/// The server under test (started in-process, or a running one), the provisioned model and licences, and the
/// simulated devices: each client has its own P-256 device key and its own token, obtained once up front.
/// </summary>
internal sealed class LoadTest : IAsyncDisposable
{
    public const string ModelId = "loadtest-model";

    private static readonly MediaTypeHeaderValue Json = new("application/json");

    private readonly LoadTestOptions _options;
    private readonly WebApplication? _server;
    private readonly DirectoryInfo? _temp;
    private readonly HttpClient _http;
    private readonly Uri _releaseUri;
    private readonly List<Device> _devices = [];
    private readonly List<(string Id, string Subject, int MaxDevices)> _licences = [];
    private string _adminToken = string.Empty;
    private ExternalIssuer? _issuer;
    private TestAttestationCa? _attestationCa;

    private LoadTest(LoadTestOptions options, WebApplication? server, DirectoryInfo? temp, Uri url, string? databasePath)
    {
        _options = options;
        _server = server;
        _temp = temp;
        Url = url;
        DatabasePath = databasePath;
        _http = new HttpClient(new SocketsHttpHandler
        {
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            MaxConnectionsPerServer = int.MaxValue,
            UseProxy = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
        })
        {
            BaseAddress = url,
            Timeout = TimeSpan.FromSeconds(30),
        };
        _releaseUri = new Uri(url, "v1/keys/release");
    }

    public Uri Url { get; }

    /// <summary>The server's SQLite file when the server runs in this process (audit rows are counted there).</summary>
    public string? DatabasePath { get; }

    public bool InProcess => _server is not null;

    public string VersionName { get; private set; } = string.Empty;

    public string KeyId { get; private set; } = string.Empty;

    public IReadOnlyList<(string Id, string Subject, int MaxDevices)> Licences => _licences;

    public string? DatabaseSettings { get; private set; }

    /// <summary>What --seed-users inserted, and how long it took; null without it.</summary>
    public string? SeedDescription { get; private set; }

    /// <summary>The clients' tokens: the server's own (licences) or an external issuer's (an entitlement rule).</summary>
    public bool IdpTokens => _options.IdpTokens;

    public static async Task<LoadTest> StartAsync(LoadTestOptions options, CancellationToken cancellationToken)
    {
        int clients = options.Levels.Max();
        LoadTest test;
        if (options.Url is { } url)
        {
            test = new LoadTest(options, null, null, url, null);
            await test.ProvisionAsync((await File.ReadAllTextAsync(options.AdminCredentialFile!, cancellationToken)).Trim(), clients, cancellationToken);
            return test;
        }

        DirectoryInfo? temp = Directory.CreateTempSubdirectory("modelseal-loadtest-");
        WebApplication? server = null;
        TestAttestationCa? attestationCa = null;
        try
        {
            var serverOptions = new ServerOptions
            {
                DataDirectory = Path.Combine(temp.FullName, "data"),
                Urls = "http://127.0.0.1:0",
                AdminCredentialOut = Path.Combine(temp.FullName, "admin.credential"),

                // The defaults (600 releases per subject and 6,000 requests per address per minute) would turn most of
                // the load into 429s: every client here comes from 127.0.0.1 and shares a few subjects. Raised
                // explicitly, through the server's options, for this run only.
                ReleasesPerMinutePerSubject = 100_000_000,
                RequestsPerMinutePerClient = options.RequestsPerMinute,

                // Tokens are obtained once up front; they must outlive the whole run.
                TokenLifetime = TimeSpan.FromHours(12),
                Metrics = new MetricsOptions { Enabled = options.Metrics },
                Database = options.PostgresVariable is null
                    ? new DatabaseOptions()
                    : new DatabaseOptions { Provider = DatabaseOptions.Postgres, ConnectionStringEnvironmentVariable = options.PostgresVariable },
            };
            using ECDsa? issuerKey = options.IdpTokens ? ECDsa.Create(ECCurve.NamedCurves.nistP256) : null;
            if (issuerKey is not null)
            {
                // A static JWKS file (the air-gapped form of a trusted issuer) and one rule: every user of the issuer gets
                // the model, on as many devices as there are clients.
                string jwks = Path.Combine(temp.FullName, "issuer.jwks.json");
                await File.WriteAllTextAsync(jwks, ExternalIssuer.Jwks(issuerKey), cancellationToken);
                serverOptions.TrustedIssuers.Add(new TrustedIssuerOptions { Issuer = ExternalIssuer.Issuer, JwksFile = jwks, Algorithms = ["ES256"], MaxLifetime = TimeSpan.FromDays(1) });
                serverOptions.Entitlements.Rules.Add(new EntitlementRuleOptions { Name = ExternalIssuer.RuleName, Issuer = ExternalIssuer.Issuer, Models = [ModelId], MaxDevices = 1 });
            }

            if (options.Attestation)
            {
                // Every grant requires Android key attestation; the TEST-ONLY CA's root is the one pinned root.
                attestationCa = new TestAttestationCa(DateTimeOffset.UtcNow);
                string roots = Path.Combine(temp.FullName, "attestation-roots.pem");
                await File.WriteAllTextAsync(roots, attestationCa.RootPem(), cancellationToken);
                serverOptions.Attestation.Android.RootsFile = roots;
                serverOptions.Attestation.ReverifyInterval = TimeSpan.Zero;
                serverOptions.Attestation.Policies[AttestationPolicy] = new AttestationPolicyOptions
                {
                    Android = new AndroidPolicyOptions { PackageNames = [LeafDescription.Package], SigningCertificateDigests = [LeafDescription.Digest] },
                };
                foreach (EntitlementRuleOptions rule in serverOptions.Entitlements.Rules)
                {
                    rule.AttestationPolicy = AttestationPolicy;
                }
            }

            server = ServerHost.Build(serverOptions, logging => logging.ClearProviders().AddSimpleConsole(c => c.SingleLine = true).SetMinimumLevel(options.ServerLog));
            await server.StartAsync(cancellationToken);
            var address = new Uri(server.Urls.Single() + "/");
            test = new LoadTest(options, server, temp, address, options.PostgresVariable is null ? Path.Combine(serverOptions.DataDirectory, "modelseal.db") : null);
            server = null;
            temp = null;
            string admin = (await File.ReadAllTextAsync(serverOptions.AdminCredentialOut, cancellationToken)).Trim();
            try
            {
                if (options.SeedUsers > 0)
                {
                    test.SeedDescription = await SyntheticUsers.InsertAsync(options, test.DatabasePath, cancellationToken);
                }

                test._issuer = issuerKey is null ? null : new ExternalIssuer(issuerKey, serverOptions.Audience);
                test._attestationCa = attestationCa;
                attestationCa = null;
                await test.ProvisionAsync(admin, clients, cancellationToken);
                test.DatabaseSettings = test.DatabasePath is null ? $"PostgreSQL through ${options.PostgresVariable}" : test.ReadDatabaseSettings();
            }
            catch
            {
                await test.DisposeAsync();
                throw;
            }

            return test;
        }
        finally
        {
            if (server is not null)
            {
                await server.DisposeAsync();
            }

            temp?.Delete(recursive: true);
            attestationCa?.Dispose();
        }
    }

    /// <summary>
    /// Runs <paramref name="clients"/> closed-loop clients for the warm-up and the measured seconds, then checks the
    /// audit log: exactly one <c>key.released</c> row per counted success.
    /// </summary>
    public async Task<LevelResult> RunLevelAsync(int clients, CancellationToken cancellationToken)
    {
        long auditBefore = await LastAuditIdAsync(cancellationToken);
        var warmup = TimeSpan.FromSeconds(_options.WarmupSeconds);
        var measured = TimeSpan.FromSeconds(_options.Seconds);
        TimeSpan cpuBefore = Environment.CpuUsage.TotalTime;
        var clock = Stopwatch.StartNew();
        long measureFrom = (long)(warmup.TotalSeconds * Stopwatch.Frequency);
        long measureTo = measureFrom + (long)(measured.TotalSeconds * Stopwatch.Frequency);
        using var abuseStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Task<(long Requests, long Limited)>[] abuse = [.. Enumerable.Range(0, _options.Abusers).Select(i => Task.Run(() => AbuseAsync(i, abuseStop.Token), CancellationToken.None))];
        // In the abuse runs (--abusers, also 0), each legitimate client comes from its own address (127.0.1.x), as real devices do, so that the
        // per-address limit can tell them from the abusers; otherwise all share one pooled client on 127.0.0.1.
        HttpClient[] own = !_options.SpreadAddresses ? [] : [.. Enumerable.Range(0, clients).Select(i => BoundClient(IPAddress.Parse($"127.0.1.{1 + (i % 250)}")))];
        ClientStats[] stats;
        try
        {
            stats = await Task.WhenAll(Enumerable.Range(0, clients).Select(i => Task.Run(() => RunClientAsync(own.Length == 0 ? _http : own[i], _devices[i], clock, measureFrom, measureTo, cancellationToken), cancellationToken)));
        }
        finally
        {
            foreach (HttpClient client in own)
            {
                client.Dispose();
            }
        }

        clock.Stop();
        await abuseStop.CancelAsync();
        (long Requests, long Limited)[] abused = await Task.WhenAll(abuse);
        TimeSpan cpu = Environment.CpuUsage.TotalTime - cpuBefore;

        long successes = stats.Sum(s => s.Successes);
        long audited = await CountReleasedAsync(auditBefore, cancellationToken);
        var result = new LevelResult(clients, measured, stats, successes, audited)
        {
            CpuPerRequest = successes == 0 ? 0 : cpu.TotalMicroseconds / successes,
            CpuUtilisation = cpu / clock.Elapsed,
            AbuseRequests = abused.Sum(a => a.Requests),
            AbuseLimited = abused.Sum(a => a.Limited),
        };
        if (audited != successes)
        {
            result.Failures.Add($"level {clients}: {successes} successful releases counted by the load generator, but {audited} key.released audit rows were written.");
        }

        foreach (ClientStats s in stats.Where(s => s.VerifyFailure is not null))
        {
            result.Failures.Add($"level {clients}: {s.VerifyFailure}");
        }

        if (stats.Any(s => s.Successes > 0 && s.Verified == 0))
        {
            result.Failures.Add($"level {clients}: a client had successes but no opened response.");
        }

        await CheckDeviceLimitsAsync(result, cancellationToken);
        return result;
    }

    /// <summary>
    /// One abusive client: its own connections from 127.0.0.(2 + index mod 8), releases with a forged token as fast as the
    /// server answers. Returns how many it sent and how many the server refused with 429 (the rest are 401s).
    /// </summary>
    private async Task<(long Requests, long Limited)> AbuseAsync(int index, CancellationToken stop)
    {
        using HttpClient http = BoundClient(IPAddress.Parse($"127.0.0.{2 + (index % 8)}"));
        byte[] body = _devices[0].RequestBody;
        long requests = 0, limited = 0;
        while (!stop.IsCancellationRequested)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, _releaseUri) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = Json;
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "eyJhbGciOiJFUzI1NiIsImtpZCI6ImZvcmdlZCJ9.eyJzdWIiOiJ4In0.forged");
            try
            {
                using HttpResponseMessage response = await http.SendAsync(request, stop);
                requests++;
                limited += response.StatusCode == HttpStatusCode.TooManyRequests ? 1 : 0;
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                break;
            }
        }

        return (requests, limited);
    }

    /// <summary>A client of the server whose connections come from <paramref name="local"/> (a loopback address).</summary>
    private HttpClient BoundClient(IPAddress local) => new(new SocketsHttpHandler
    {
        UseProxy = false,
        UseCookies = false,
        PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
        ConnectCallback = async (context, ct) =>
        {
            var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
            try
            {
                socket.Bind(new IPEndPoint(local, 0));
                await socket.ConnectAsync(context.DnsEndPoint, ct);
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    })
    {
        BaseAddress = Url,
        Timeout = TimeSpan.FromSeconds(30),
    };

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        _attestationCa?.Dispose();
        foreach (Device device in _devices)
        {
            device.Key.Dispose();
        }

        if (_server is not null)
        {
            await _server.StopAsync(CancellationToken.None);
            await _server.DisposeAsync();
        }

        _temp?.Delete(recursive: true);
    }

    private async Task<ClientStats> RunClientAsync(HttpClient http, Device device, Stopwatch clock, long measureFrom, long measureTo, CancellationToken cancellationToken)
    {
        var stats = new ClientStats();
        bool verifiedThisLevel = false;
        long n = 0;
        while (true)
        {
            long start = clock.ElapsedTicks;
            if (start >= measureTo)
            {
                return stats;
            }

            cancellationToken.ThrowIfCancellationRequested();
            HttpStatusCode status;
            byte[]? body = null;
            bool verify = !verifiedThisLevel || (_options.VerifyEvery > 0 && n % _options.VerifyEvery == 0);
            n++;
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, _releaseUri);
                request.Headers.Authorization = device.Authorization;
                var content = new ByteArrayContent(device.RequestBody);
                content.Headers.ContentType = Json;
                request.Content = content;
                using HttpResponseMessage response = await http.SendAsync(request, HttpCompletionOption.ResponseContentRead, CancellationToken.None);
                status = response.StatusCode;
                if (status == HttpStatusCode.OK && verify)
                {
                    body = await response.Content.ReadAsByteArrayAsync(CancellationToken.None);
                }
            }
            catch (HttpRequestException e)
            {
                stats.Error($"HTTP {e.HttpRequestError}");
                continue;
            }
            catch (TaskCanceledException)
            {
                stats.Error("client timeout");
                continue;
            }

            long end = clock.ElapsedTicks;
            if (status != HttpStatusCode.OK)
            {
                stats.Error(((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture));
                continue;
            }

            stats.Successes++;
            if (start >= measureFrom && end <= measureTo)
            {
                stats.Latencies.Add(end - start);
            }

            if (body is not null)
            {
                string? failure = Verify(device, body);
                if (failure is null)
                {
                    stats.Verified++;
                    verifiedThisLevel = true;
                }
                else
                {
                    stats.VerifyFailure ??= failure;
                }
            }
        }
    }

    /// <summary>Opens a release answer with the device key: the data key must come out and carry the version's key id.</summary>
    private string? Verify(Device device, byte[] body)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(body);
            JsonElement json = document.RootElement;
            string modelId = json.GetProperty("modelId").GetString()!;
            string version = json.GetProperty("version").GetString()!;
            string keyId = json.GetProperty("keyId").GetString()!;
            if (modelId != ModelId || version != VersionName || keyId != KeyId)
            {
                return $"a release named {modelId}/{version}/{keyId}, expected {ModelId}/{VersionName}/{KeyId}.";
            }

            using ModelKey key = KeyRelease.Open(
                device.Key,
                System.Buffers.Text.Base64Url.DecodeFromChars(json.GetProperty("enc").GetString()),
                System.Buffers.Text.Base64Url.DecodeFromChars(json.GetProperty("sealedKey").GetString()),
                modelId,
                version,
                keyId,
                device.Subject,
                DateTimeOffset.Parse(json.GetProperty("leaseExpiresAt").GetString()!, System.Globalization.CultureInfo.InvariantCulture));
            return key.KeyId == KeyId ? null : "the opened key has another key id.";
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or FormatException or InvalidOperationException or HpkeOpenException)
        {
            return $"a release answer could not be opened with the device key ({e.GetType().Name}).";
        }
    }

    // ---- provisioning ----------------------------------------------------------------------------------------------

    private async Task ProvisionAsync(string adminCredential, int clients, CancellationToken cancellationToken)
    {
        JsonElement token = await PostAsync("v1/token", new { grantType = "admin", credential = adminCredential }, null, HttpStatusCode.OK, cancellationToken);
        _adminToken = token.GetProperty("accessToken").GetString()!;

        // A fresh model name per run, so that a reused --url server does not refuse it.
        string modelId = ModelId;
        JsonElement models = await GetAsync("v1/admin/models", cancellationToken);
        if (models.GetProperty("items").EnumerateArray().Any(m => m.GetProperty("modelId").GetString() == ModelId))
        {
            throw new LoadTestException($"The server already has a model '{ModelId}'; use a fresh server (or data directory) for the load test.");
        }

        await PostAsync("v1/admin/models", new { modelId }, _adminToken, HttpStatusCode.Created, cancellationToken);
        using HpkeKeyPair publisher = HpkeKeyPair.Generate();
        JsonElement version = await PostAsync($"v1/admin/models/{modelId}/versions", new { publisherPublicKey = Base64Url(publisher.PublicKey.Encoded.Span), nonce = Base64Url(RandomNumberGenerator.GetBytes(16)), protocol = 2 }, _adminToken, HttpStatusCode.Created, cancellationToken);
        VersionName = version.GetProperty("version").GetString()!;
        KeyId = version.GetProperty("keyId").GetString()!;

        if (_issuer is not null)
        {
            // One user per client, each with its own token from the external issuer: the rule grants the key.
            for (int i = 0; i < clients; i++)
            {
                string subject = $"loadtest-user-{i}";
                var key = HpkeKeyPair.Generate();
                byte[] body = JsonSerializer.SerializeToUtf8Bytes(new { modelId, version = "latest", devicePublicKey = Base64Url(key.PublicKey.Encoded.Span), nonce = Base64Url(RandomNumberGenerator.GetBytes(16)), protocol = 2 });
                _devices.Add(new Device(key, subject, new AuthenticationHeaderValue("Bearer", _issuer.Token(subject)), body));
            }

            await RegisterAttestedAsync(cancellationToken);
            return;
        }

        int licenceCount = Math.Min(_options.Licences, clients);
        int perLicence = (clients + licenceCount - 1) / licenceCount;
        var credentials = new List<string>();
        for (int l = 0; l < licenceCount; l++)
        {
            string subject = $"loadtest-app-{l}";
            JsonElement licence = await PostAsync("v1/admin/licences", new { subject, models = new[] { modelId }, maxDevices = perLicence, attestationPolicy = _attestationCa is null ? null : AttestationPolicy }, _adminToken, HttpStatusCode.Created, cancellationToken);
            _licences.Add((licence.GetProperty("licenceId").GetString()!, subject, perLicence));
            credentials.Add(licence.GetProperty("credential").GetString()!);
        }

        // One device key and one token per client, up front: token issuance is not part of what is measured.
        for (int i = 0; i < clients; i++)
        {
            int l = i % licenceCount;
            JsonElement answer = await PostAsync("v1/token", new { grantType = "licence", licenceId = _licences[l].Id, credential = credentials[l] }, null, HttpStatusCode.OK, cancellationToken);
            var key = HpkeKeyPair.Generate();
            byte[] body = JsonSerializer.SerializeToUtf8Bytes(new { modelId, version = "latest", devicePublicKey = Base64Url(key.PublicKey.Encoded.Span), nonce = Base64Url(RandomNumberGenerator.GetBytes(16)), protocol = 2 });
            _devices.Add(new Device(key, _licences[l].Subject, new AuthenticationHeaderValue("Bearer", answer.GetProperty("accessToken").GetString()), body));
        }

        await RegisterAttestedAsync(cancellationToken);
    }

    /// <summary>The attestation policy every grant has with <c>--attestation</c>.</summary>
    public const string AttestationPolicy = "loadtest";

    /// <summary>
    /// With <c>--attestation</c>: what the first release of a device costs against a repeat release. One device at a
    /// time, each gets a challenge, has the TEST-ONLY CA attest its key with it (not measured), then sends the release
    /// with the evidence (measured: the server verifies the chain and the policy, uses up the challenge and stores the
    /// attestation) and once more without evidence (measured: the accepted attestation is looked up). Null without it.
    /// </summary>
    public string? AttestationDescription { get; private set; }

    private async Task RegisterAttestedAsync(CancellationToken cancellationToken)
    {
        if (_attestationCa is null)
        {
            return;
        }

        var first = new List<(double Ms, double CpuUs)>();
        var repeat = new List<(double Ms, double CpuUs)>();
        foreach (Device device in _devices)
        {
            using var challengeRequest = new HttpRequestMessage(HttpMethod.Post, "v1/attestation/challenges");
            challengeRequest.Headers.Authorization = device.Authorization;
            JsonElement answer = await SendAsync(challengeRequest, HttpStatusCode.Created, cancellationToken);
            byte[] challenge = System.Buffers.Text.Base64Url.DecodeFromChars(answer.GetProperty("challenge").GetString());
            using ECDiffieHellman publicKey = ECDiffieHellman.Create(new ECParameters
            {
                Curve = ECCurve.NamedCurves.nistP256,
                Q = new ECPoint { X = device.Key.PublicKey.Encoded.Span[1..33].ToArray(), Y = device.Key.PublicKey.Encoded.Span[33..].ToArray() },
            });
            List<byte[]> chain = _attestationCa.Chain(publicKey, new LeafDescription { Challenge = challenge });
            using JsonDocument plain = JsonDocument.Parse(device.RequestBody);
            var body = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (JsonProperty property in plain.RootElement.EnumerateObject())
            {
                body[property.Name] = property.Value.Clone();
            }

            body["attestation"] = new { format = "android-key", challenge = Base64Url(challenge), certificates = chain.Select(c => Base64Url(c)).ToArray() };
            first.Add(await TimedReleaseAsync(device, JsonSerializer.SerializeToUtf8Bytes(body), cancellationToken));
            repeat.Add(await TimedReleaseAsync(device, device.RequestBody, cancellationToken));
        }

        static double Median(IEnumerable<double> values)
        {
            double[] sorted = [.. values.Order()];
            return sorted[sorted.Length / 2];
        }

        AttestationDescription = string.Create(
            System.Globalization.CultureInfo.InvariantCulture,
            $"every grant has an attestation policy (Android key attestation, TEST-ONLY CA, 3-certificate chains); each of the {_devices.Count} devices registered once before the levels, one at a time: the release with evidence took {Median(first.Select(f => f.Ms)):F2} ms and {Median(first.Select(f => f.CpuUs)):F0} µs of CPU (median), the next release without evidence {Median(repeat.Select(r => r.Ms)):F2} ms and {Median(repeat.Select(r => r.CpuUs)):F0} µs; the levels below are repeat releases under the policy");
    }

    private async Task<(double Ms, double CpuUs)> TimedReleaseAsync(Device device, byte[] body, CancellationToken cancellationToken)
    {
        TimeSpan cpu = Process.GetCurrentProcess().TotalProcessorTime;
        long start = Stopwatch.GetTimestamp();
        using var request = new HttpRequestMessage(HttpMethod.Post, _releaseUri);
        request.Headers.Authorization = device.Authorization;
        request.Content = new ByteArrayContent(body);
        request.Content.Headers.ContentType = Json;
        await SendAsync(request, HttpStatusCode.OK, cancellationToken);
        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        return (ms, (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMicroseconds);
    }

    private async Task<JsonElement> PostAsync(string path, object body, string? token, HttpStatusCode expected, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(body)) };
        request.Content.Headers.ContentType = Json;
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return await SendAsync(request, expected, cancellationToken);
    }

    private async Task<JsonElement> GetAsync(string path, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _adminToken);
        return await SendAsync(request, HttpStatusCode.OK, cancellationToken);
    }

    private async Task<JsonElement> SendAsync(HttpRequestMessage request, HttpStatusCode expected, CancellationToken cancellationToken)
    {
        using HttpResponseMessage response = await _http.SendAsync(request, cancellationToken);
        string text = await response.Content.ReadAsStringAsync(cancellationToken);
        if (response.StatusCode != expected)
        {
            // Problem details never hold secrets (docs/protocol.md section 6); the request path names no secret either.
            throw new LoadTestException($"{request.Method} {request.RequestUri?.PathAndQuery} answered {(int)response.StatusCode}, expected {(int)expected}: {Shorten(text)}");
        }

        using JsonDocument document = JsonDocument.Parse(text);
        return document.RootElement.Clone();
    }

    // ---- audit and device checks ----------------------------------------------------------------------------------

    private async Task<long> LastAuditIdAsync(CancellationToken cancellationToken)
    {
        if (DatabasePath is not null)
        {
            using SqliteConnection connection = OpenDatabase();
            using SqliteCommand command = connection.CreateCommand();
            command.CommandText = "SELECT COALESCE(MAX(id), 0) FROM audit";
            return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
        }

        long last = 0;
        while (true)
        {
            JsonElement page = await GetAsync($"v1/admin/audit?after={last}&limit=500", cancellationToken);
            foreach (JsonElement item in page.GetProperty("items").EnumerateArray())
            {
                last = item.GetProperty("id").GetInt64();
            }

            if (page.GetProperty("next").ValueKind == JsonValueKind.Null)
            {
                return last;
            }
        }
    }

    /// <summary><c>key.released</c> rows for this run's licences after <paramref name="after"/>.</summary>
    private async Task<long> CountReleasedAsync(long after, CancellationToken cancellationToken)
    {
        var licences = _licences.Select(l => l.Id).ToHashSet(StringComparer.Ordinal);
        if (DatabasePath is not null)
        {
            // Read from the database file with a connection of our own: what is there was committed.
            using SqliteConnection connection = OpenDatabase();
            using SqliteCommand command = connection.CreateCommand();
            command.CommandText = _issuer is null
                ? "SELECT licence_id, COUNT(*) FROM audit WHERE id > $after AND event = 'key.released' AND outcome = 'ok' GROUP BY licence_id"
                : "SELECT issuer, COUNT(*) FROM audit WHERE id > $after AND event = 'key.released' AND outcome = 'ok' AND issuer IS NOT NULL GROUP BY issuer";
            command.Parameters.AddWithValue("$after", after);
            long count = 0;
            using SqliteDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                if (_issuer is null ? licences.Contains(reader.GetString(0)) : reader.GetString(0) == ExternalIssuer.Issuer)
                {
                    count += reader.GetInt64(1);
                }
            }

            return count;
        }

        long released = 0;
        long last = after;
        while (true)
        {
            JsonElement page = await GetAsync($"v1/admin/audit?after={last}&limit=500", cancellationToken);
            foreach (JsonElement item in page.GetProperty("items").EnumerateArray())
            {
                last = item.GetProperty("id").GetInt64();
                bool ours = _issuer is null
                    ? item.GetProperty("licenceId").GetString() is { } id && licences.Contains(id)
                    : item.TryGetProperty("issuer", out JsonElement issuer) && issuer.GetString() == ExternalIssuer.Issuer;
                if (item.GetProperty("event").GetString() == "key.released" && ours)
                {
                    released++;
                }
            }

            if (page.GetProperty("next").ValueKind == JsonValueKind.Null)
            {
                return released;
            }
        }
    }

    private async Task CheckDeviceLimitsAsync(LevelResult result, CancellationToken cancellationToken)
    {
        foreach ((string id, _, int maxDevices) in _licences)
        {
            JsonElement devices = await GetAsync($"v1/admin/licences/{id}/devices", cancellationToken);
            int count = devices.GetProperty("items").GetArrayLength();
            if (count > maxDevices)
            {
                result.Failures.Add($"licence {id} has {count} devices registered, over its limit of {maxDevices}.");
            }
        }
    }

    private SqliteConnection OpenDatabase()
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DatabasePath, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    /// <summary>The server database's journal mode and synchronous setting, as a fresh connection sees them.</summary>
    private string ReadDatabaseSettings()
    {
        using SqliteConnection connection = OpenDatabase();
        using SqliteCommand command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode";
        string journal = (string)command.ExecuteScalar()!;
        command.CommandText = "PRAGMA synchronous";
        long synchronous = (long)command.ExecuteScalar()!;
        command.CommandText = "SELECT sqlite_version()";
        string version = (string)command.ExecuteScalar()!;
        return $"SQLite {version}, journal_mode={journal}, synchronous={synchronous} on a fresh connection";
    }

    private static string Base64Url(ReadOnlySpan<byte> bytes) => System.Buffers.Text.Base64Url.EncodeToString(bytes);

    private static string Shorten(string text) => text.Length <= 300 ? text : text[..300] + "…";

    /// <summary>A simulated device: its key pair, its licence's subject, its token (as a header) and its request body.</summary>
    private sealed record Device(HpkeKeyPair Key, string Subject, AuthenticationHeaderValue Authorization, byte[] RequestBody);
}

/// <summary>One client's counts and measured latencies (Stopwatch ticks) for one level.</summary>
internal sealed class ClientStats
{
    public long Successes { get; set; }

    public long Verified { get; set; }

    public string? VerifyFailure { get; set; }

    public List<long> Latencies { get; } = new(4096);

    public Dictionary<string, long> Errors { get; } = new(StringComparer.Ordinal);

    public void Error(string kind) => Errors[kind] = Errors.GetValueOrDefault(kind) + 1;
}

/// <summary>The outcome of one level.</summary>
internal sealed class LevelResult
{
    public LevelResult(int clients, TimeSpan measured, ClientStats[] stats, long successes, long audited)
    {
        Clients = clients;
        Successes = successes;
        Audited = audited;
        long[] latencies = stats.SelectMany(s => s.Latencies).ToArray();
        Array.Sort(latencies);
        Requests = latencies.Length;
        RequestsPerSecond = latencies.Length / measured.TotalSeconds;
        P50 = Percentile(latencies, 0.50);
        P90 = Percentile(latencies, 0.90);
        P99 = Percentile(latencies, 0.99);
        Max = latencies.Length == 0 ? 0 : Ms(latencies[^1]);
        Verified = stats.Sum(s => s.Verified);
        foreach ((string kind, long count) in stats.SelectMany(s => s.Errors))
        {
            Errors[kind] = Errors.GetValueOrDefault(kind) + count;
        }
    }

    public int Clients { get; }

    /// <summary>Successful releases completed inside the measured window.</summary>
    public long Requests { get; }

    public double RequestsPerSecond { get; }

    public double P50 { get; }

    public double P90 { get; }

    public double P99 { get; }

    public double Max { get; }

    /// <summary>All successful releases of the level, warm-up included (what the audit must show).</summary>
    public long Successes { get; }

    public long Audited { get; }

    public long Verified { get; }

    /// <summary>This process's CPU time (user + system, all threads) per successful release, in µs, over the whole level.</summary>
    public double CpuPerRequest { get; init; }

    /// <summary>This process's CPU time over wall time (2.0 = both cores of a 2-core machine).</summary>
    public double CpuUtilisation { get; init; }

    /// <summary>Requests the abusive clients sent during the level, and how many of them got 429.</summary>
    public long AbuseRequests { get; init; }

    public long AbuseLimited { get; init; }

    public SortedDictionary<string, long> Errors { get; } = new(StringComparer.Ordinal);

    public List<string> Failures { get; } = [];

    public string ErrorText => Errors.Count == 0 ? "0" : string.Join(", ", Errors.Select(e => $"{e.Value}× {e.Key}"));

    public string Summary() => string.Create(
        System.Globalization.CultureInfo.InvariantCulture,
        $"level {Clients,4}: {RequestsPerSecond,8:F0} req/s  p50 {P50:F2} ms  p90 {P90:F2} ms  p99 {P99:F2} ms  max {Max:F2} ms  errors {ErrorText}  audit {Audited}/{Successes}  opened {Verified}  cpu {CpuPerRequest:F0} µs/req ({CpuUtilisation:F2} cores){(AbuseRequests == 0 ? string.Empty : $"  abuse {AbuseRequests} req ({AbuseLimited} got 429)")}");

    private static double Percentile(long[] sorted, double p) =>
        sorted.Length == 0 ? 0 : Ms(sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)]);

    private static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
}

/// <summary>The markdown report.</summary>
internal static class Report
{
    public static string Markdown(LoadTestOptions options, LoadTest test, IReadOnlyList<LevelResult> results)
    {
        var text = new StringBuilder();
        var c = System.Globalization.CultureInfo.InvariantCulture;
        text.AppendLine(c, $"Key-server load test: full key releases (`POST /v1/keys/release`) over HTTP/1.1 on loopback, {options.Seconds} s measured per level after {options.WarmupSeconds} s warm-up.");
        text.AppendLine();
        text.AppendLine(c, $"- server: {(test.InProcess ? "in-process (ServerHost), Kestrel on " + test.Url : test.Url.ToString())}; {Environment.ProcessorCount} logical CPUs, {System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}");
        text.AppendLine(test.IdpTokens
            ? FormattableString.Invariant($"- model `{LoadTest.ModelId}` version {test.VersionName}; tokens of an external issuer (ES256, static JWKS file), one user per client, keys granted by one entitlement rule; one P-256 device key and one token per client (tokens minted up front, not measured)")
            : FormattableString.Invariant($"- model `{LoadTest.ModelId}` version {test.VersionName}; {test.Licences.Count} licence(s) with a device limit of {(test.Licences.Count > 0 ? test.Licences[0].MaxDevices : 0)} each; one P-256 device key and one token per client (tokens issued up front, not measured)"));
        if (test.AttestationDescription is not null)
        {
            text.AppendLine(c, $"- attestation: {test.AttestationDescription}");
        }

        if (test.SeedDescription is not null)
        {
            text.AppendLine(c, $"- seeded: {test.SeedDescription}");
        }
        if (test.DatabaseSettings is not null)
        {
            text.AppendLine(c, $"- database: {test.DatabaseSettings}");
        }

        text.AppendLine(c, $"- command line: `{string.Join(' ', options.CommandLine)}`");
        text.AppendLine();
        text.AppendLine("| clients | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | audit rows (= successes) | CPU µs/req | cores busy |");
        text.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|");
        foreach (LevelResult r in results)
        {
            text.AppendLine(c, $"| {r.Clients} | {r.Requests} | {r.RequestsPerSecond:F0} | {r.P50:F2} | {r.P90:F2} | {r.P99:F2} | {r.Max:F2} | {r.ErrorText} | {r.Audited} {(r.Audited == r.Successes ? "=" : "≠")} {r.Successes} | {r.CpuPerRequest:F0} | {r.CpuUtilisation:F2} |");
        }

        text.AppendLine();
        text.AppendLine("`requests` counts successful releases that started and finished inside the measured window; `audit rows` counts the level's `key.released` rows (warm-up included) against every success the clients saw. Each client opened at least its first answer per level with its device key. `CPU µs/req` is this process's CPU time (server and load generator together when the server runs in-process) per successful release over the whole level; `cores busy` is that CPU time over wall time.");
        return text.ToString();
    }
}
