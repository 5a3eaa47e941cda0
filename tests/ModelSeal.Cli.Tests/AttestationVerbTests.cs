using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace ModelSeal.Cli.Tests;

/// <summary>
/// The CLI's attestation options and verb (issue 15): <c>licence add|edit --attestation-policy</c>,
/// <c>--no-attestation-policy</c>, the policy in <c>licence list</c>, and <c>attestation reverify</c>. Parsing and help
/// here; the requests and the printing against <see cref="FakeAdminServer"/>, a stand-in that answers the protocol's
/// JSON (the real server's side is tested in AttestationCliTests).
/// </summary>
public sealed class AttestationVerbTests : IAsyncLifetime
{
    private readonly Workspace _work = new();
    private FakeAdminServer? _server;

    private FakeAdminServer Server => _server!;

    public async ValueTask InitializeAsync()
    {
        _server = await FakeAdminServer.StartAsync();
        OwnerOnlyFile.Write(_work["admin.credential"], "admin-credential");
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _work.Dispose();
    }

    [Fact]
    public async Task Setting_and_removing_the_policy_together_is_a_usage_error_naming_both()
    {
        CliResult both = await Workspace.RunAsync("licence", "edit", "lic_0123456789abcdef", "--attestation-policy", "store-apps", "--no-attestation-policy");

        Assert.Equal(ExitCodes.Usage, both.ExitCode);
        Asserts.ErrorWithHint(both, "--attestation-policy and --no-attestation-policy cannot be used together");
    }

    [Theory]
    [InlineData("edit", "to remove the licence's policy, use --no-attestation-policy")]
    [InlineData("add", "leave the option out for a licence without one")]
    public async Task An_empty_policy_name_is_a_usage_error(string verb, string advice)
    {
        string[] args = verb == "edit"
            ? ["licence", "edit", "lic_0123456789abcdef", "--attestation-policy", " "]
            : ["licence", "add", "--subject", "s", "--models", "m", "--out", _work["x.credential"], "--attestation-policy", ""];

        CliResult result = await Workspace.RunAsync(args);

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Asserts.ErrorWithHint(result, advice);
        Assert.False(File.Exists(_work["x.credential"]));
    }

    [Fact]
    public async Task The_help_shows_the_options_and_an_example_of_each()
    {
        CliResult edit = await Workspace.RunAsync("licence", "edit", "--help");
        CliResult add = await Workspace.RunAsync("license", "add", "--help");
        CliResult reverify = await Workspace.RunAsync("attestation", "reverify", "--help");

        Assert.Contains("--no-attestation-policy", edit.Stdout, StringComparison.Ordinal);
        Assert.Contains("modelseal licence edit lic_0123456789abcdef --attestation-policy store-apps", edit.Stdout, StringComparison.Ordinal);
        Assert.Contains("--attestation-policy <NAME>", add.Stdout, StringComparison.Ordinal);
        Assert.Contains("modelseal attestation reverify --admin-credential-file admin.credential", reverify.Stdout, StringComparison.Ordinal);
        Assert.Contains("Exit codes: 0 when the check ran", reverify.Stdout, StringComparison.Ordinal);
        Assert.All([edit, add, reverify], r => Assert.Equal(ExitCodes.Success, r.ExitCode));
    }

    [Fact]
    public async Task Add_sends_the_policy_and_shows_it()
    {
        CliResult added = await Admin("licence", "add", "--subject", "phones", "--models", "*", "--attestation-policy", "store-apps", "--out", _work["phones.credential"], "--json");

        Assert.True(added.ExitCode == 0, added.ToString());
        Assert.Equal("store-apps", Server.Bodies("POST /v1/admin/licences").Single()["attestationPolicy"]!.GetValue<string>());
        Assert.Equal("store-apps", added.Json().GetProperty("licence").GetProperty("attestationPolicy").GetString());

        CliResult text = await Admin("licence", "add", "--subject", "phones", "--models", "*", "--attestation-policy", "store-apps", "--out", _work["phones2.credential"]);
        Assert.Contains("; attestation policy store-apps)", text.Stdout, StringComparison.Ordinal);

        // Without the option, the request has no member (the server's default: no policy).
        Assert.Equal(0, (await Admin("licence", "add", "--subject", "desktops", "--models", "*", "--out", _work["desktops.credential"])).ExitCode);
        Assert.False(Server.Bodies("POST /v1/admin/licences").Last().AsObject().ContainsKey("attestationPolicy"));
    }

    [Fact]
    public async Task An_unknown_policy_name_is_refused_with_a_hint_to_the_configuration()
    {
        CliResult refused = await Admin("licence", "add", "--subject", "phones", "--models", "*", "--attestation-policy", FakeAdminServer.UnknownPolicy, "--out", _work["p.credential"]);

        Assert.Equal(ExitCodes.ServerError, refused.ExitCode);
        Asserts.ErrorWithHint(refused, "invalid-request");
        Assert.Contains($"hint: check the attestation policy name '{FakeAdminServer.UnknownPolicy}': it must be one of the key server's Attestation:Policies", refused.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(_work["p.credential"]));
    }

    [Fact]
    public async Task Edit_sets_the_policy_and_no_attestation_policy_sends_an_empty_name_to_remove_it()
    {
        CliResult set = await Admin("licence", "edit", FakeAdminServer.LicenceId, "--attestation-policy", "store-apps", "--json");
        Assert.True(set.ExitCode == 0, set.ToString());
        Assert.Equal(["attestationPolicy"], set.Json().GetProperty("changed").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("store-apps", set.Json().GetProperty("licence").GetProperty("attestationPolicy").GetString());

        CliResult removed = await Admin("licence", "edit", FakeAdminServer.LicenceId, "--no-attestation-policy");
        Assert.True(removed.ExitCode == 0, removed.ToString());
        Assert.Contains("changed licence lic_0123456789abcdef (phones): attestationPolicy;", removed.Stdout, StringComparison.Ordinal);
        Assert.Contains("no attestation policy", removed.Stdout, StringComparison.Ordinal);

        Assert.Equal(["store-apps", string.Empty], Server.Bodies("PATCH /v1/admin/licences/" + FakeAdminServer.LicenceId).Select(b => b["attestationPolicy"]!.GetValue<string>()));

        // Another change leaves the policy alone: no member.
        Assert.Equal(0, (await Admin("licence", "edit", FakeAdminServer.LicenceId, "--max-devices", "3")).ExitCode);
        Assert.False(Server.Bodies("PATCH /v1/admin/licences/" + FakeAdminServer.LicenceId).Last().AsObject().ContainsKey("attestationPolicy"));
    }

    [Fact]
    public async Task Licence_list_shows_the_policy_in_the_table_and_the_json()
    {
        Server.Policy = "store-apps";

        CliResult table = await Admin("licence", "list");
        CliResult json = await Admin("licence", "list", "--json");

        string[] lines = table.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["LICENCE", "SUBJECT", "MODELS", "DEVICES", "NOT", "BEFORE", "EXPIRES", "ATTESTATION", "STATE"], lines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(["store-apps", "active"], lines[1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[^2..]);
        Assert.Equal("store-apps", json.Json().GetProperty("licences")[0].GetProperty("attestationPolicy").GetString());

        Server.Policy = null;
        CliResult none = await Admin("licence", "list", "--json");
        Assert.Equal(JsonValueKind.Null, none.Json().GetProperty("licences")[0].GetProperty("attestationPolicy").ValueKind);
    }

    [Fact]
    public async Task Reverify_prints_the_rejected_devices_as_a_table_and_json_and_exits_0()
    {
        Server.Reverify = """{"checked":3,"rejected":[{"thumbprint":"3q2-7wVhS5lq1mAWh2dbBXm1yXk8d3mqv0l4aW0OqVs","format":"android-key","reason":"certificate-revoked"},{"thumbprint":"AAAA","format":"android-key","reason":"untrusted-root"}]}""";

        CliResult table = await Admin("attestation", "reverify");
        CliResult json = await Admin("attestation", "reverify", "--json");

        Assert.True(table.ExitCode == 0, table.ToString());
        string[] lines = table.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("checked 3 accepted attestations on ", lines[0], StringComparison.Ordinal);
        Assert.EndsWith(": 2 rejected now", lines[0], StringComparison.Ordinal);
        Assert.Equal(["THUMBPRINT", "FORMAT", "REASON"], lines[1].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(["3q2-7wVhS5lq1mAWh2dbBXm1yXk8d3mqv0l4aW0OqVs", "android-key", "certificate-revoked"], lines[2].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(4, lines.Length);

        Assert.Equal(0, json.ExitCode);
        Assert.Equal("attestation reverify", json.Json().GetProperty("command").GetString());
        Assert.Equal(3, json.Json().GetProperty("checked").GetInt32());
        Assert.Equal(["certificate-revoked", "untrusted-root"], json.Json().GetProperty("rejected").EnumerateArray().Select(r => r.GetProperty("reason").GetString()));
        Assert.Equal(2, Server.Bodies("POST /v1/admin/attestations/reverify").Count());
        Assert.All(Server.Bearers("POST /v1/admin/attestations/reverify"), b => Assert.Equal(FakeAdminServer.AdminToken, b));
    }

    [Fact]
    public async Task Reverify_with_nothing_rejected_says_so_without_a_table()
    {
        Server.Reverify = """{"checked":0,"rejected":[]}""";

        CliResult result = await Admin("attestation", "reverify");

        Assert.Equal(0, result.ExitCode);
        Assert.Equal($"checked 0 accepted attestations on {Server.Url}/: none rejected", result.Stdout.Trim());
    }

    [Fact]
    public async Task Reverify_against_a_server_without_attestation_is_a_server_error_with_a_hint()
    {
        Server.Reverify = null; // 404

        CliResult result = await Admin("attestation", "reverify");

        Assert.Equal(ExitCodes.ServerError, result.ExitCode);
        Asserts.ErrorWithHint(result, "has no attestation re-verification (404)");
        Assert.Contains("hint: upgrade the key server to a version with device attestation", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reverify_without_an_admin_credential_is_refused_before_any_request()
    {
        CliResult result = await Workspace.RunAsync(["attestation", "reverify", "--server", Server.Url], interactive: false);

        Assert.Equal(ExitCodes.KeyError, result.ExitCode);
        Asserts.ErrorWithHint(result, "no admin credential");
        Assert.Empty(Server.Bodies("POST /v1/admin/attestations/reverify"));
    }

    private Task<CliResult> Admin(params string[] args) => Workspace.RunAsync([.. args, "--server", Server.Url, "--admin-credential-file", _work["admin.credential"]]);
}

/// <summary>
/// A stand-in key server on 127.0.0.1 for the admin verbs: the admin token, licences (one, <see cref="LicenceId"/>,
/// whose policy is <see cref="Policy"/>), models (none) and attestation re-verification (<see cref="Reverify"/>; null:
/// 404 as a server without it). Records each request's body.
/// </summary>
internal sealed class FakeAdminServer : IAsyncDisposable
{
    public const string LicenceId = "lic_0123456789abcdef";
    public const string UnknownPolicy = "no-such-policy";

    /// <summary>A JWT whose payload has <c>sub</c> (the CLI reads the admin token's subject); never verified here.</summary>
    public static readonly string AdminToken = "eyJhbGciOiJFUzI1NiJ9." + Base64Url.EncodeToString("""{"sub":"admin"}"""u8) + ".c2ln";

    private readonly ConcurrentQueue<(string Request, string? Bearer, JsonNode Body)> _requests = new();
    private WebApplication? _app;

    public string Url => _app!.Urls.Single();

    public string? Policy { get; set; }

    public string? Reverify { get; set; }

    public static async Task<FakeAdminServer> StartAsync()
    {
        var server = new FakeAdminServer();
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        WebApplication app = builder.Build();
        app.Use(async (context, next) =>
        {
            string body = await new StreamReader(context.Request.Body).ReadToEndAsync(context.RequestAborted);
            server._requests.Enqueue(($"{context.Request.Method} {context.Request.Path}", context.Request.Headers.Authorization.ToString().Replace("Bearer ", string.Empty, StringComparison.Ordinal), JsonNode.Parse(body.Length == 0 ? "{}" : body)!));
            context.Items["body"] = body;
            await next(context);
        });
        app.MapPost("/v1/token", () => Results.Json(new { accessToken = AdminToken, tokenType = "Bearer", expiresIn = 900 }));
        app.MapGet("/v1/admin/models", () => Results.Json(new { items = Array.Empty<object>() }));
        app.MapGet("/v1/admin/licences", () => Results.Json(new { items = new[] { server.Licence() } }));
        app.MapPost("/v1/admin/licences", (HttpContext context) =>
        {
            JsonNode request = JsonNode.Parse((string)context.Items["body"]!)!;
            string? policy = request["attestationPolicy"]?.GetValue<string>();
            if (policy == UnknownPolicy)
            {
                return Results.Problem(detail: $"attestationPolicy: no attestation policy '{policy}' is configured.", statusCode: 400, type: "https://modelseal.dev/problems/invalid-request");
            }

            server.Policy = policy;
            JsonObject created = server.Licence();
            created["credential"] = "licence-credential";
            return Results.Content(created.ToJsonString(), "application/json", statusCode: 201);
        });
        app.MapMethods("/v1/admin/licences/{id}", ["PATCH"], (HttpContext context) =>
        {
            JsonNode request = JsonNode.Parse((string)context.Items["body"]!)!;
            if (request["attestationPolicy"]?.GetValue<string>() is { } policy)
            {
                server.Policy = policy.Length == 0 ? null : policy;
            }

            return Results.Content(server.Licence().ToJsonString(), "application/json");
        });
        app.MapPost("/v1/admin/attestations/reverify", () => server.Reverify is { } answer
            ? Results.Content(answer, "application/json")
            : Results.Problem(statusCode: 404, type: "https://modelseal.dev/problems/not-found"));
        await app.StartAsync(TestContext.Current.CancellationToken);
        server._app = app;
        return server;
    }

    /// <summary>The bodies of the requests <paramref name="request"/> ("METHOD /path"), in order.</summary>
    public IEnumerable<JsonNode> Bodies(string request) => _requests.Where(r => r.Request == request).Select(r => r.Body);

    /// <summary>The bearer tokens of the requests <paramref name="request"/>, in order.</summary>
    public IEnumerable<string?> Bearers(string request) => _requests.Where(r => r.Request == request).Select(r => r.Bearer);

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync();
        }
    }

    private JsonObject Licence() => new()
    {
        ["licenceId"] = LicenceId, ["subject"] = "phones", ["models"] = new JsonArray("*"), ["notBefore"] = null, ["expiresAt"] = null,
        ["maxDevices"] = 1, ["createdAt"] = "2026-12-01T00:00:00Z", ["revokedAt"] = null, ["claim"] = "credential", ["issuer"] = null,
        ["attestationPolicy"] = Policy,
    };
}
