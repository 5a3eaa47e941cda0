using System.Text;

namespace ModelSeal.Server.Tests;

/// <summary>
/// The HTTP edges of docs/protocol.md section 6.1, byte for byte over a plain TCP connection: the limits on the request
/// target and header fields (problem answers, before routing and authentication), and the malformed requests that
/// Kestrel refuses before any of the server's code runs (a plain 4xx, never a 5xx, and the connection closed).
/// </summary>
public sealed class HttpEdgeTests : IClassFixture<HttpEdgeTests.Server>
{
    private const string Unknown = "/v1/no-such-route/";
    private readonly Server _fixture;

    public HttpEdgeTests(Server fixture)
    {
        _fixture = fixture;
    }

    private Uri Address => _fixture.Instance.Address;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_request_target_of_2048_bytes_is_routed_and_one_of_2049_is_414(bool withToken)
    {
        string? token = withToken ? _fixture.Admin : null;
        (await Get(Target(Unknown, 2048), token)).AssertProblem(404, "not-found");
        (await Get(Target(Unknown, 2049), token)).AssertProblem(414, "uri-too-long");

        // The query counts, and the limit comes before authentication: an endpoint that needs a token says 414, not 401.
        RawHttp.Answer fits = await Get(Target("/v1/admin/audit?limit=5&pad=", 2048), token);
        if (withToken)
        {
            Assert.True(fits.Status == 200, fits.ToString());
        }
        else
        {
            fits.AssertProblem(401, "unauthorized");
        }

        (await Get(Target("/v1/admin/audit?limit=5&pad=", 2049), token)).AssertProblem(414, "uri-too-long");

        // Far over the limit, but under Kestrel's own (raised) limit: still the server's problem answer.
        (await Get(Target(Unknown, 20_000), token)).AssertProblem(414, "uri-too-long");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_header_field_of_8192_bytes_is_accepted_and_one_of_8193_is_431(bool withToken)
    {
        string? token = withToken ? _fixture.Admin : null;

        // A field's size is its name plus its value: "X-Pad" is 5 bytes.
        (await Get(Unknown, token, ("X-Pad", new string('p', 8192 - 5)))).AssertProblem(404, "not-found");
        (await Get(Unknown, token, ("X-Pad", new string('p', 8193 - 5)))).AssertProblem(431, "request-header-fields-too-large");

        // Before authentication: an oversized field on an endpoint that needs a token is 431, not 401.
        (await Get("/v1/admin/models", token, ("X-Pad", new string('p', 8193 - 5)))).AssertProblem(431, "request-header-fields-too-large");

        // Over Kestrel's default total of 32 KiB but under its raised limit: the server's problem answer.
        (await Get(Unknown, token, ("X-Pad", new string('p', 40_000)))).AssertProblem(431, "request-header-fields-too-large");
    }

    [Fact]
    public async Task An_oversized_bearer_token_is_431_not_401()
    {
        (await Get("/v1/admin/models", null, ("Authorization", "Bearer " + new string('a', 9000)))).AssertProblem(431, "request-header-fields-too-large");
    }

    [Fact]
    public async Task All_header_fields_together_may_have_32768_bytes()
    {
        // Host and Connection are fields too; the rest is filled with fields of at most 8192 bytes.
        int fixedFields = "Host".Length + Host.Length + "Connection".Length + "close".Length;
        (await Get(Unknown, null, Fill(32_768 - fixedFields))).AssertProblem(404, "not-found");
        (await Get(Unknown, null, Fill(32_769 - fixedFields))).AssertProblem(431, "request-header-fields-too-large");

        static (string, string)[] Fill(int bytes)
        {
            var fields = new List<(string, string)>();
            for (int i = 0; bytes > 0; i++)
            {
                string name = $"X-Pad-{i}";
                int value = Math.Min(8192, bytes) - name.Length;
                fields.Add((name, new string('p', value)));
                bytes -= name.Length + value;
            }

            return [.. fields];
        }
    }

    [Fact]
    public async Task A_request_may_have_100_header_fields()
    {
        // Host and Connection, and the rest: 100 fields, then 101 (over Kestrel's default of 100, under its raised limit).
        (await Get(Unknown, null, Fields(98))).AssertProblem(404, "not-found");
        (await Get(Unknown, null, Fields(99))).AssertProblem(431, "request-header-fields-too-large");

        // A repeated field counts once per occurrence.
        (await Get(Unknown, null, [.. Enumerable.Repeat(("X-Same", "v"), 99)])).AssertProblem(431, "request-header-fields-too-large");

        static (string, string)[] Fields(int count) => [.. Enumerable.Range(0, count).Select(i => ($"X-F{i}", "v"))];
    }

    /// <summary>Requests that Kestrel refuses while parsing them, before any of the server's code runs.</summary>
    public static TheoryData<string, int> Malformed() => new()
    {
        { "junk after the version", 400 },
        { "non-ASCII method", 400 },
        { "missing Host", 400 },
        { "two Host fields", 400 },
        { "space before a colon", 400 },
        { "header line without a colon", 400 },
        { "non-numeric Content-Length", 400 },
        { "request line of 100 KB", 414 },
        { "header fields of 200 KB", 431 },
        { "1000 header fields more than Kestrel allows", 431 },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public async Task A_malformed_request_gets_Kestrels_plain_4xx_and_the_connection_is_closed(string how, int status)
    {
        string path = "/v1/keys/release";
        byte[] request = how switch
        {
            "junk after the version" => Ascii($"GET {path} HTTP/1.1 junk\r\nHost: {Host}\r\n\r\n"),
            "non-ASCII method" => [(byte)'G', 0xC3, 0x89, (byte)'T', .. Ascii($" {path} HTTP/1.1\r\nHost: {Host}\r\n\r\n")],
            "missing Host" => Ascii($"GET {path} HTTP/1.1\r\n\r\n"),
            "two Host fields" => Ascii($"GET {path} HTTP/1.1\r\nHost: {Host}\r\nHost: {Host}\r\n\r\n"),
            "space before a colon" => Ascii($"GET {path} HTTP/1.1\r\nHost : {Host}\r\n\r\n"),
            "header line without a colon" => Ascii($"GET {path} HTTP/1.1\r\nHost: {Host}\r\nno colon here\r\n\r\n"),
            "non-numeric Content-Length" => Ascii($"POST {path} HTTP/1.1\r\nHost: {Host}\r\nContent-Length: ten\r\n\r\n"),
            "request line of 100 KB" => Ascii($"GET /{new string('a', 100_000)} HTTP/1.1\r\nHost: {Host}\r\n\r\n"),
            "header fields of 200 KB" => Ascii($"GET {path} HTTP/1.1\r\nHost: {Host}\r\nX-Pad: {new string('p', 200_000)}\r\n\r\n"),
            _ => Ascii($"GET {path} HTTP/1.1\r\nHost: {Host}\r\n{string.Concat(Enumerable.Range(0, 1001).Select(i => $"X-F{i}: v\r\n"))}\r\n"),
        };

        RawHttp.Answer answer = await RawHttp.SendAsync(Address, request);
        Assert.True(answer.Status == status, $"{how}: expected {status}, got {answer}");
        Assert.True(answer.Closed, $"{how}: the connection stayed open after {answer}");
        Assert.Equal(string.Empty, answer.Body);
        Assert.Null(answer.ContentType);
        Assert.Equal("0", answer.Headers.GetValueOrDefault("content-length"));
        Assert.Equal("close", answer.Headers.GetValueOrDefault("connection"));
        Assert.False(answer.Headers.ContainsKey("cache-control"), "Kestrel's own answer has none of the server's headers.");
    }

    [Fact]
    public async Task A_request_line_version_other_than_1_0_or_1_1_is_Kestrels_plain_505()
    {
        // The one answer of Kestrel's parser that is not a 4xx: the version is not one the server speaks (RFC 9110 15.6.6).
        RawHttp.Answer answer = await RawHttp.SendAsync(Address, $"GET /health/live HTTP/1.2\r\nHost: {Host}\r\n\r\n");
        Assert.True(answer.Status == 505, answer.ToString());
        Assert.True(answer.Closed);
        Assert.Null(answer.ContentType);
    }

    [Fact]
    public async Task Kestrel_takes_a_bare_LF_as_a_line_end_and_a_control_character_in_the_target_as_part_of_it()
    {
        // Neither is refused while parsing: the request is answered like any other (here by routing).
        RawHttp.Answer bareLf = await RawHttp.SendAsync(Address, $"GET /health/live HTTP/1.1\nHost: {Host}\nConnection: close\n\n");
        Assert.True(bareLf.Status == 200, bareLf.ToString());
        (await RawHttp.SendAsync(Address, $"GET {Unknown}\u0001 HTTP/1.1\r\nHost: {Host}\r\nConnection: close\r\n\r\n")).AssertProblem(404, "not-found");
    }

    [Theory]
    [InlineData("application/json", true)]
    [InlineData("APPLICATION/JSON", true)]
    [InlineData("application/json; charset=utf-8", true)]
    [InlineData("application/vnd.example+json", true)]
    [InlineData("text/json", false)]
    [InlineData("text/vnd.example+json", true)]
    [InlineData("text/plain", false)]
    [InlineData("application/x-www-form-urlencoded", false)]
    [InlineData("not a media type", false)]
    [InlineData(null, false)]
    public async Task A_body_is_read_only_with_a_JSON_content_type_and_otherwise_is_400(string? contentType, bool read)
    {
        string modelId = "ct-" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(contentType ?? "none")))[..16];
        using var content = new ByteArrayContent(Encoding.UTF8.GetBytes($"{{\"modelId\":\"{modelId}\"}}"));
        if (contentType is not null)
        {
            Assert.True(content.Headers.TryAddWithoutValidation("Content-Type", contentType));
        }

        Api answer = await _fixture.Instance.SendAsync(HttpMethod.Post, "/v1/admin/models", content, _fixture.Admin);
        if (read)
        {
            answer.AssertStatus(System.Net.HttpStatusCode.Created);
        }
        else
        {
            answer.AssertProblem(System.Net.HttpStatusCode.BadRequest, "invalid-request");
            Assert.True(answer.Json.GetProperty("errors").TryGetProperty("body", out _), answer.Text);
        }
    }

    [Fact]
    public async Task A_charset_parameter_is_ignored_and_the_body_is_read_as_UTF8()
    {
        // "é" in UTF-8 (C3 A9) under a label that says Latin-1: read as UTF-8, so the subject is "é", not "Ã©".
        using var utf8 = new ByteArrayContent(Encoding.UTF8.GetBytes("{\"subject\":\"caf\u00e9\",\"models\":[\"*\"],\"maxDevices\":1}"));
        utf8.Headers.TryAddWithoutValidation("Content-Type", "application/json; charset=iso-8859-1");
        Api created = await _fixture.Instance.SendAsync(HttpMethod.Post, "/v1/admin/licences", utf8, _fixture.Admin);
        created.AssertStatus(System.Net.HttpStatusCode.Created);
        Assert.Equal("caf\u00e9", created.Json.GetProperty("subject").GetString());

        // The same text in Latin-1 (a lone E9 byte) is not UTF-8, whatever the label says.
        using var latin1 = new ByteArrayContent(Encoding.Latin1.GetBytes("{\"subject\":\"caf\u00e9\",\"models\":[\"*\"],\"maxDevices\":1}"));
        latin1.Headers.TryAddWithoutValidation("Content-Type", "application/json; charset=iso-8859-1");
        (await _fixture.Instance.SendAsync(HttpMethod.Post, "/v1/admin/licences", latin1, _fixture.Admin)).AssertProblem(System.Net.HttpStatusCode.BadRequest, "invalid-request");
    }

    [Fact]
    public async Task Only_the_refusals_of_the_release_rules_are_audited()
    {
        TestServer server = _fixture.Instance;
        string admin = _fixture.Admin;
        await server.CreateModelAsync(admin, "audited");
        await server.CreateModelAsync(admin, "audited-other");
        (await server.CreateVersionAsync(admin, "audited")).Key.Dispose();
        Licence licence = await server.CreateLicenceAsync(admin, "audited-subject", ["audited"], maxDevices: 1);
        string token = await server.LicenceTokenAsync(licence);
        using ModelSeal.Hpke.HpkeKeyPair device = ModelSeal.Hpke.HpkeKeyPair.Generate(), second = ModelSeal.Hpke.HpkeKeyPair.Generate();
        string key = TestServer.Base64Url(device.PublicKey.Encoded.Span);
        const string Refused = "SELECT COUNT(*) FROM audit WHERE event = 'key.refused'";
        long before = server.Database.Count(Refused);

        // Refused before the release rules run: by the transport (limits, token, scope, body) or at the token endpoint.
        (await server.PostAsync("/v1/keys/release", new { modelId = "audited", version = "latest", devicePublicKey = key, nonce = ServerClient.Nonce(), protocol = 2 })).AssertProblem(System.Net.HttpStatusCode.Unauthorized, "unauthorized");
        (await server.PostAsync("/v1/keys/release", new { modelId = "audited", version = "latest", devicePublicKey = key, nonce = ServerClient.Nonce(), protocol = 2 }, token + "x")).AssertProblem(System.Net.HttpStatusCode.Unauthorized, "unauthorized");
        (await server.PostAsync("/v1/keys/release", new { modelId = "audited", version = "latest", devicePublicKey = key, nonce = ServerClient.Nonce(), protocol = 2 }, admin)).AssertProblem(System.Net.HttpStatusCode.Forbidden, "forbidden");
        (await server.PostAsync("/v1/keys/release", "{", token)).AssertProblem(System.Net.HttpStatusCode.BadRequest, "invalid-request");
        (await server.PostAsync("/v1/keys/release", new { modelId = "audited/..", version = "latest", devicePublicKey = key, nonce = ServerClient.Nonce(), protocol = 2 }, token)).AssertProblem(System.Net.HttpStatusCode.BadRequest, "invalid-request");
        (await server.PostAsync("/v1/keys/release", new { modelId = "audited", version = "latest", devicePublicKey = new string('A', 270_000), nonce = ServerClient.Nonce(), protocol = 2 }, token)).AssertProblem(System.Net.HttpStatusCode.RequestEntityTooLarge, "request-too-large");
        (await RawHttp.SendAsync(Address, $"POST /v1/keys/release HTTP/1.1\r\nHost: {Host}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nX-Pad: {new string('p', 9000)}\r\nContent-Length: 0\r\n\r\n")).AssertProblem(431, "request-header-fields-too-large");
        (await server.PostAsync("/v1/token", new { grantType = "licence", licenceId = licence.Id, credential = "wrong" })).AssertProblem(System.Net.HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Equal(before, server.Database.Count(Refused));

        // Refused by the release rules: each one is a key.refused record with the problem code as its outcome.
        (await server.PostAsync("/v1/keys/release", new { modelId = "audited-other", version = "latest", devicePublicKey = key, nonce = ServerClient.Nonce(), protocol = 2 }, token)).AssertProblem(System.Net.HttpStatusCode.Forbidden, "model-not-licensed");
        (await server.PostAsync("/v1/keys/release", new { modelId = "audited", version = "9", devicePublicKey = key, nonce = ServerClient.Nonce(), protocol = 2 }, token)).AssertProblem(System.Net.HttpStatusCode.NotFound, "version-not-found");
        (await server.PostAsync("/v1/keys/release", new { modelId = "audited", version = "latest", devicePublicKey = "AAAA", nonce = ServerClient.Nonce(), protocol = 2 }, token)).AssertProblem(System.Net.HttpStatusCode.BadRequest, "invalid-device-key");
        (await server.ReleaseAndOpenAsync(token, licence, "audited", "latest", device)).Key.Dispose();
        (await server.ReleaseAsync(token, "audited", "latest", second)).AssertProblem(System.Net.HttpStatusCode.Forbidden, "device-limit");
        Assert.Equal(before + 4, server.Database.Count(Refused));
        foreach (string outcome in new[] { "model-not-licensed", "version-not-found", "invalid-device-key", "device-limit" })
        {
            Assert.Equal(1, server.Database.Count($"{Refused} AND outcome = '{outcome}' AND licence_id = '{licence.Id}'"));
        }
    }

    private string Host => $"{Address.Host}:{Address.Port}";

    private static string Target(string prefix, int length) => prefix + new string('a', length - prefix.Length);

    private static byte[] Ascii(string text) => Encoding.ASCII.GetBytes(text);

    /// <summary>A GET with <c>Connection: close</c>, the token if any, and these further fields.</summary>
    private Task<RawHttp.Answer> Get(string target, string? token, params (string Name, string Value)[] fields)
    {
        var request = new StringBuilder($"GET {target} HTTP/1.1\r\nHost: {Host}\r\nConnection: close\r\n");
        if (token is not null)
        {
            request.Append("Authorization: Bearer ").Append(token).Append("\r\n");
        }

        foreach ((string name, string value) in fields)
        {
            request.Append(name).Append(": ").Append(value).Append("\r\n");
        }

        return RawHttp.SendAsync(Address, request.Append("\r\n").ToString());
    }

    /// <summary>One key server for the class, without rate limits (every request comes from 127.0.0.1).</summary>
    public sealed class Server : IAsyncLifetime
    {
        internal TestServer Instance { get; private set; } = null!;

        internal string Admin { get; private set; } = null!;

        public async ValueTask InitializeAsync()
        {
            Instance = await TestServer.StartAsync(TestServer.WithoutRateLimits);
            Admin = await Instance.AdminTokenAsync();
        }

        public async ValueTask DisposeAsync() => await Instance.DisposeAsync();
    }
}
