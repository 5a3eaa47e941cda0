using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ModelSeal.Hpke;

namespace ModelSeal.Cli.Tests;

/// <summary>
/// The admin verbs of issues 14 and 16 against a real key server (Kestrel on 127.0.0.1, SQLite in a temporary data
/// directory): version states, model delete, licence edit, devices and remove-device, master-key rotate, audit
/// filters, usage, and the users of an entitlement rule. Each change is checked where it takes effect (a device's key
/// release) and in the audit log.
/// </summary>
public sealed class AdminVerbTests : IAsyncLifetime
{
    private readonly Workspace _work = new();
    private ExternalIssuer? _idp;
    private TestKeyServer? _server;
    private HttpClient? _http;

    private string Url => _server!.Url;

    public async ValueTask InitializeAsync()
    {
        // An app's own sign-in (a trusted issuer) whose users get 'classifier' on one device each under a rule.
        _idp = new ExternalIssuer("https://idp.example", _work["idp.json"]);
        _server = await TestKeyServer.StartAsync(options =>
        {
            // One audit record per refusal, written at once (no coalescing window to wait for).
            options.Audit.RefusalWindow = TimeSpan.Zero;
            options.TrustedIssuers = [new() { Issuer = _idp.Issuer, JwksFile = _idp.JwksFile }];
            options.Entitlements.Rules = [new() { Name = "one-device", Issuer = _idp.Issuer, Models = ["classifier"], MaxDevices = 1 }];
        });
        _http = new HttpClient { BaseAddress = new Uri(Url) };
    }

    public async ValueTask DisposeAsync()
    {
        _http?.Dispose();
        _idp?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _work.Dispose();
    }

    private Task<CliResult> Admin(params string[] args) => Workspace.RunAsync([.. args, "--server", Url, "--admin-credential-file", _server!.AdminCredentialFile]);

    [Fact]
    public async Task Versions_are_disabled_enabled_destroyed_with_yes_and_the_model_deleted_once_all_are_destroyed()
    {
        await PublishClassifierAsync();

        CliResult disabled = await Admin("model", "disable", "classifier", "1");
        Assert.True(disabled.ExitCode == 0, disabled.ToString());
        Assert.StartsWith("disabled classifier version 1", disabled.Stdout, StringComparison.Ordinal);
        Assert.Equal("disabled", await StateAsync("1"));
        CliResult enabled = await Admin("model", "enable", "classifier", "1", "--json");
        Assert.Equal(("model enable", "active"), (enabled.Json().GetProperty("command").GetString(), enabled.Json().GetProperty("state").GetString()));
        Assert.Equal("active", await StateAsync("1"));

        CliResult early = await Admin("model", "delete", "classifier", "--yes");
        Assert.Equal(ExitCodes.ServerError, early.ExitCode);
        Assert.Contains("versions-not-destroyed", early.Stderr, StringComparison.Ordinal);
        Assert.Contains("hint: destroy every version first: 'modelseal model destroy MODEL-ID VERSION --yes'", early.Stderr, StringComparison.Ordinal);

        CliResult unconfirmed = await Admin("model", "destroy", "classifier", "1");
        Assert.Equal(ExitCodes.Usage, unconfirmed.ExitCode);
        Asserts.ErrorWithHint(unconfirmed, "modelseal model destroy erases the key of classifier version 1 for good");
        Assert.Contains("hint: to go ahead, run 'modelseal model destroy classifier 1 --yes'", unconfirmed.Stderr, StringComparison.Ordinal);
        Assert.Equal("active", await StateAsync("1"));

        CliResult destroyed = await Admin("model", "destroy", "classifier", "1", "--yes", "--json");
        Assert.True(destroyed.ExitCode == 0, destroyed.ToString());
        Assert.Equal(("model destroy", "destroyed"), (destroyed.Json().GetProperty("command").GetString(), destroyed.Json().GetProperty("state").GetString()));
        Assert.Equal("destroyed", await StateAsync("1"));

        CliResult notConfirmed = await Admin("model", "delete", "classifier");
        Assert.Equal(ExitCodes.Usage, notConfirmed.ExitCode);
        Asserts.ErrorWithHint(notConfirmed, "modelseal model delete removes the model classifier");
        CliResult deleted = await Admin("model", "delete", "classifier", "--yes", "--json");
        Assert.True(deleted.ExitCode == 0, deleted.ToString());
        Assert.Equal(("model delete", "classifier", 1), (deleted.Json().GetProperty("command").GetString(), deleted.Json().GetProperty("modelId").GetString(), deleted.Json().GetProperty("versions").GetInt32()));
        Assert.Empty((await Admin("model", "list", "--json")).Json().GetProperty("models").EnumerateArray());

        string[] events = [.. (await Admin("audit", "--model", "classifier", "--json")).Json().GetProperty("items").EnumerateArray().Select(i => i.GetProperty("event").GetString()!)];
        Assert.Equal(["model.created", "version.created", "version.disabled", "version.enabled", "version.destroyed", "model.deleted"], events);
    }

    [Fact]
    public async Task Devices_are_listed_and_removed_and_a_lower_limit_keeps_registered_devices_and_refuses_new_ones()
    {
        await PublishClassifierAsync();
        CliResult added = await Admin("licence", "add", "--subject", "s", "--models", "classifier", "--max-devices", "1", "--out", _work["l.credential"], "--json");
        string licence = added.Json().GetProperty("licence").GetProperty("licenceId").GetString()!;
        string jwt = await TokenAsync(licence);
        using HpkeKeyPair a = HpkeKeyPair.Generate();
        using HpkeKeyPair b = HpkeKeyPair.Generate();
        using HpkeKeyPair c = HpkeKeyPair.Generate();
        Assert.Equal(HttpStatusCode.OK, await ReleaseAsync(jwt, a));
        Assert.Equal(HttpStatusCode.Forbidden, await ReleaseAsync(jwt, b));

        CliResult table = await Admin("licence", "devices", licence);
        Assert.True(table.ExitCode == 0, table.ToString());
        string[] lines = table.Stdout.TrimEnd().Split('\n');
        Assert.Matches("^THUMBPRINT +FIRST SEEN +LAST SEEN$", lines[0]);
        Assert.StartsWith(a.PublicKey.Thumbprint + "  ", lines[1], StringComparison.Ordinal);
        CliResult json = await Admin("licence", "devices", licence, "--json");
        Assert.Equal(("licence devices", 1), (json.Json().GetProperty("command").GetString(), json.Json().GetProperty("maxDevices").GetInt32()));
        Assert.Equal([a.PublicKey.Thumbprint], json.Json().GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("thumbprint").GetString()));

        CliResult removed = await Admin("licence", "remove-device", licence, a.PublicKey.Thumbprint);
        Assert.True(removed.ExitCode == 0, removed.ToString());
        Assert.StartsWith($"removed device {a.PublicKey.Thumbprint}", removed.Stdout, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, await ReleaseAsync(jwt, b));
        CliResult again = await Admin("licence", "remove-device", licence, a.PublicKey.Thumbprint);
        Assert.Equal(ExitCodes.ServerError, again.ExitCode);
        Assert.Contains("hint: check the thumbprint: 'modelseal licence devices LICENCE-ID'", again.Stderr, StringComparison.Ordinal);

        CliResult raised = await Admin("licence", "edit", licence, "--max-devices", "2", "--json");
        Assert.True(raised.ExitCode == 0, raised.ToString());
        Assert.Equal(2, raised.Json().GetProperty("licence").GetProperty("maxDevices").GetInt32());
        Assert.Equal(["maxDevices"], raised.Json().GetProperty("changed").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(HttpStatusCode.OK, await ReleaseAsync(jwt, c));

        CliResult lowered = await Admin("licence", "edit", licence, "--max-devices", "1");
        Assert.True(lowered.ExitCode == 0, lowered.ToString());
        Assert.StartsWith($"changed licence {licence} (s): maxDevices", lowered.Stdout, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, await ReleaseAsync(jwt, b));
        Assert.Equal(HttpStatusCode.OK, await ReleaseAsync(jwt, c));
        Assert.Equal(HttpStatusCode.Forbidden, await ReleaseAsync(jwt, a));

        CliResult nothing = await Admin("licence", "edit", licence);
        Assert.Equal(ExitCodes.Usage, nothing.ExitCode);
        Assert.Contains("modelseal licence edit needs at least one of --expires, --no-expiry, --max-devices, --models, --attestation-policy and --no-attestation-policy", nothing.Stderr, StringComparison.Ordinal);

        CliResult ended = await Admin("licence", "edit", licence, "--expires", "2020-01-01");
        Assert.True(ended.ExitCode == 0, ended.ToString());
        Assert.Contains("in the past", ended.Stderr, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Forbidden, await ReleaseAsync(jwt, b));

        CliResult both = await Admin("licence", "edit", licence, "--expires", "2030-01-01", "--no-expiry");
        Assert.Equal(ExitCodes.Usage, both.ExitCode);
        Assert.Contains("--expires and --no-expiry cannot be used together", both.Stderr, StringComparison.Ordinal);

        CliResult unending = await Admin("licence", "edit", licence, "--no-expiry", "--json");
        Assert.True(unending.ExitCode == 0, unending.ToString());
        Assert.Equal(JsonValueKind.Null, unending.Json().GetProperty("licence").GetProperty("expiresAt").ValueKind);
        Assert.Equal(["expiresAt"], unending.Json().GetProperty("changed").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(HttpStatusCode.OK, await ReleaseAsync(jwt, b));

        JsonElement[] changes = [.. (await Admin("audit", "--licence", licence, "--event", "licence.changed", "--json")).Json().GetProperty("items").EnumerateArray()];
        Assert.Equal(["2", "1", null, null], changes.Select(r => r.GetProperty("attributes").TryGetProperty("maxDevices", out JsonElement v) ? v.GetString() : null));
        Assert.Single((await Admin("audit", "--licence", licence, "--event", "device.removed", "--json")).Json().GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task The_master_key_rotates_online_and_the_usage_and_filtered_audit_show_the_releases()
    {
        await PublishClassifierAsync();
        CliResult added = await Admin("licence", "add", "--subject", "s", "--models", "classifier", "--max-devices", "1", "--out", _work["l.credential"], "--json");
        string jwt = await TokenAsync(added.Json().GetProperty("licence").GetProperty("licenceId").GetString()!);
        using HpkeKeyPair a = HpkeKeyPair.Generate();
        using HpkeKeyPair b = HpkeKeyPair.Generate();
        Assert.Equal(HttpStatusCode.OK, await ReleaseAsync(jwt, a));

        CliResult rotated = await Admin("master-key", "rotate", "--json");
        Assert.True(rotated.ExitCode == 0, rotated.ToString());
        Assert.Equal(("master-key rotate", 2, 1), (rotated.Json().GetProperty("command").GetString(), rotated.Json().GetProperty("masterKeyVersion").GetInt32(), rotated.Json().GetProperty("rewrapped").GetInt32()));
        Assert.Equal(HttpStatusCode.OK, await ReleaseAsync(jwt, a));
        Assert.Equal(HttpStatusCode.Forbidden, await ReleaseAsync(jwt, b));
        Assert.Single((await Admin("audit", "--event", "master-key.rotated", "--json")).Json().GetProperty("items").EnumerateArray());

        CliResult usage = await Admin("usage", "--json");
        Assert.True(usage.ExitCode == 0, usage.ToString());
        JsonElement row = Assert.Single(usage.Json().GetProperty("items").EnumerateArray());
        Assert.Equal(("usage", "classifier", 2L, 1L), (usage.Json().GetProperty("command").GetString(), row.GetProperty("modelId").GetString(), row.GetProperty("releases").GetInt64(), row.GetProperty("refusals").GetInt64()));
        Assert.Equal(1, row.GetProperty("refusalsByReason").GetProperty("device-limit").GetInt64());
        CliResult table = await Admin("usage");
        string[] lines = table.Stdout.TrimEnd().Split('\n');
        Assert.Matches("^MODEL +DAY +RELEASES +REFUSALS +BY REASON$", lines[0]);
        Assert.Matches(@"^classifier +\d{4}-\d\d-\d\d +2 +1 +device-limit 1$", lines[1]);
        Assert.Equal("no key releases or refusals in that time", (await Admin("usage", "--since", "2000-01-01", "--until", "2000-01-02")).Stdout.Trim());
        CliResult backwards = await Admin("usage", "--since", "2000-01-02", "--until", "2000-01-01");
        Assert.Equal(ExitCodes.Usage, backwards.ExitCode);

        CliResult badEvent = await Admin("audit", "--event", "Key Released");
        Assert.Equal(ExitCodes.Usage, badEvent.ExitCode);
        Assert.Contains("--event 'Key Released' is not an audit event name", badEvent.Stderr, StringComparison.Ordinal);
        Assert.Equal("no records match", (await Admin("audit", "--since", "2000-01-01", "--until", "2000-01-02")).Stdout.Trim());
        Assert.Equal(2, (await Admin("audit", "--event", "key.released", "--model", "classifier", "--json")).Json().GetProperty("items").GetArrayLength());
        Assert.Equal(2, (await Admin("audit", "--subject", "s", "--event", "key.released", "--json")).Json().GetProperty("items").GetArrayLength());
        Assert.Equal(0, (await Admin("audit", "--subject", "someone-else", "--event", "key.released", "--json")).Json().GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task Users_are_listed_shown_blocked_unblocked_and_rid_of_a_device_and_each_change_is_audited()
    {
        await PublishClassifierAsync();
        Assert.StartsWith("no users on the key server", (await Admin("user", "list")).Stdout, StringComparison.Ordinal);

        // A user comes into existence at its first key release under the rule, with its one device.
        string jwt = _idp!.Token("alice@example.com", "keys", DateTimeOffset.UtcNow);
        using HpkeKeyPair a = HpkeKeyPair.Generate();
        using HpkeKeyPair b = HpkeKeyPair.Generate();
        Assert.Equal(HttpStatusCode.OK, await ReleaseAsync(jwt, a));
        Assert.Equal(HttpStatusCode.Forbidden, await ReleaseAsync(jwt, b));

        CliResult list = await Admin("user", "list");
        Assert.True(list.ExitCode == 0, list.ToString());
        string[] rows = list.Stdout.TrimEnd().Split('\n');
        Assert.Matches("^USER +ISSUER +SUBJECT +DEVICES +CREATED +LAST SEEN +STATE$", rows[0]);
        Assert.Matches(@"^\d+ +https://idp\.example +alice@example\.com +1 +\S+ +\S+ +active$", rows[1]);
        JsonElement listed = (await Admin("user", "list", "--issuer", _idp.Issuer, "--json")).Json();
        Assert.Equal("user list", listed.GetProperty("command").GetString());
        JsonElement user = Assert.Single(listed.GetProperty("users").EnumerateArray());
        string id = user.GetProperty("userId").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(("alice@example.com", 1L, JsonValueKind.Null), (user.GetProperty("subject").GetString(), user.GetProperty("devices").GetInt64(), listed.GetProperty("next").ValueKind));
        Assert.StartsWith("no users of the issuer 'https://other.example'", (await Admin("user", "list", "--issuer", "https://other.example")).Stdout, StringComparison.Ordinal);
        Assert.Matches($@"\n{id} +https://idp\.example +alice@example\.com +1 ", (await Admin("user", "list", "--subject", "alice@example.com")).Stdout);
        Assert.StartsWith("no users with the subject 'bob@example.com' of the issuer 'https://idp.example'", (await Admin("user", "list", "--subject", "bob@example.com", "--issuer", _idp.Issuer)).Stdout, StringComparison.Ordinal);

        // show: the devices with their rule, and the releases and refusals with what decided them.
        CliResult shown = await Admin("user", "show", id);
        Assert.True(shown.ExitCode == 0, shown.ToString());
        string[] lines = shown.Stdout.TrimEnd().Split('\n');
        Assert.StartsWith($"user {id} (alice@example.com at https://idp.example): active; created ", lines[0], StringComparison.Ordinal);
        Assert.Matches("^THUMBPRINT +RULE +FIRST SEEN +LAST SEEN$", lines[2]);
        Assert.StartsWith(a.PublicKey.Thumbprint + "  one-device  ", lines[3], StringComparison.Ordinal);
        Assert.Matches("^ID +TIME +EVENT +OUTCOME +MODEL +VERSION +DEVICE +DECIDED BY$", lines[5]);
        Assert.Matches($@"^\d+ +\S+ +key\.refused +device-limit +classifier +1 +{System.Text.RegularExpressions.Regex.Escape(b.PublicKey.Thumbprint)} +rule one-device$", lines[6]);
        Assert.Matches($@"^\d+ +\S+ +key\.released +ok +classifier +1 +{System.Text.RegularExpressions.Regex.Escape(a.PublicKey.Thumbprint)} +rule one-device$", lines[7]);
        JsonElement detail = (await Admin("user", "show", id, "--json")).Json();
        Assert.Equal(("user show", "one-device", 2), (detail.GetProperty("command").GetString(), Assert.Single(detail.GetProperty("devices").EnumerateArray()).GetProperty("rule").GetString(), detail.GetProperty("releases").GetArrayLength()));

        // A wrong user id: not a number is a usage error; a number the server does not know says where the ids are.
        CliResult notAnId = await Admin("user", "show", "alice@example.com");
        Assert.Equal(ExitCodes.Usage, notAnId.ExitCode);
        Asserts.ErrorWithHint(notAnId, "USER 'alice@example.com' is not a user id");
        CliResult unknown = await Admin("user", "block", "999");
        Assert.Equal(ExitCodes.ServerError, unknown.ExitCode);
        Asserts.ErrorWithHint(unknown, "user-not-found");
        Assert.Contains("hint: check the user id: 'modelseal user list' shows the users", unknown.Stderr, StringComparison.Ordinal);
        Assert.Contains("hint: check the user id:", (await Admin("user", "remove-device", "999", a.PublicKey.Thumbprint)).Stderr, StringComparison.Ordinal);
        CliResult tooMany = await Admin("user", "list", "--limit", "501");
        Assert.Equal(ExitCodes.Usage, tooMany.ExitCode);
        Asserts.ErrorWithHint(tooMany, "--limit must be from 1 to 500");

        // Blocked: refused at the next release; blocking again changes nothing and says so; unblocked: keys again.
        CliResult blocked = await Admin("user", "block", id);
        Assert.True(blocked.ExitCode == 0, blocked.ToString());
        Assert.StartsWith($"blocked user {id} (alice@example.com at https://idp.example)", blocked.Stdout, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Forbidden, await ReleaseAsync(jwt, a));
        CliResult again = await Admin("user", "block", id);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains("was already blocked", again.Stdout, StringComparison.Ordinal);
        Assert.False((await Admin("user", "block", id, "--json")).Json().GetProperty("changed").GetBoolean());
        Assert.Matches($@"\n{id} +.* +blocked \S+\n", (await Admin("user", "list")).Stdout);
        JsonElement unblocked = (await Admin("user", "unblock", id, "--json")).Json();
        Assert.Equal(("user unblock", true, JsonValueKind.Null), (unblocked.GetProperty("command").GetString(), unblocked.GetProperty("changed").GetBoolean(), unblocked.GetProperty("user").GetProperty("blockedAt").ValueKind));
        Assert.Contains("is not blocked; nothing changed", (await Admin("user", "unblock", id)).Stdout, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, await ReleaseAsync(jwt, a));

        // remove-device: an unknown device says where the thumbprints are; removing one frees its slot.
        CliResult notThere = await Admin("user", "remove-device", id, b.PublicKey.Thumbprint);
        Assert.Equal(ExitCodes.ServerError, notThere.ExitCode);
        Asserts.ErrorWithHint(notThere, "device-not-found");
        Assert.Contains($"hint: user {id} has no device '{b.PublicKey.Thumbprint}': 'modelseal user show {id}' lists its devices", notThere.Stderr, StringComparison.Ordinal);
        CliResult removed = await Admin("user", "remove-device", id, a.PublicKey.Thumbprint);
        Assert.True(removed.ExitCode == 0, removed.ToString());
        Assert.StartsWith($"removed device {a.PublicKey.Thumbprint} (rule one-device, first seen ", removed.Stdout, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, await ReleaseAsync(jwt, b));
        Assert.Equal(HttpStatusCode.Forbidden, await ReleaseAsync(jwt, a));

        // Each change is in the audit log once (the repeated block and unblock changed nothing and recorded nothing).
        string[] events = [.. (await Admin("audit", "--json")).Json().GetProperty("items").EnumerateArray().Select(i => i.GetProperty("event").GetString()!).Where(e => e.StartsWith("user.", StringComparison.Ordinal))];
        Assert.Equal(["user.blocked", "user.unblocked", "user.device-removed"], events);
    }

    /// <summary>Adds model 'classifier' and publishes its version 1 with encrypt --server.</summary>
    private async Task PublishClassifierAsync()
    {
        Assert.Equal(0, (await Admin("model", "add", "classifier")).ExitCode);
        CliResult sealedRun = await Admin("encrypt", RepoPaths.SampleModel, "--model-id", "classifier", "--out", _work["cls.mseal"]);
        Assert.True(sealedRun.ExitCode == 0, sealedRun.ToString());
    }

    private async Task<string?> StateAsync(string version) =>
        (await Admin("model", "list", "--json")).Json().GetProperty("models")[0].GetProperty("versions").EnumerateArray().Single(v => v.GetProperty("version").GetString() == version).GetProperty("state").GetString();

    private async Task<string> TokenAsync(string licence)
    {
        CliResult token = await Workspace.RunAsync("token", "issue", "--licence", licence, "--credential-file", _work["l.credential"], "--server", Url);
        Assert.True(token.ExitCode == 0, token.ToString());
        return token.Stdout.Trim();
    }

    private async Task<HttpStatusCode> ReleaseAsync(string jwt, HpkeKeyPair device)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/keys/release")
        {
            Content = JsonContent.Create(new { modelId = "classifier", version = "latest", devicePublicKey = System.Buffers.Text.Base64Url.EncodeToString(device.PublicKey.Encoded.Span), nonce = System.Buffers.Text.Base64Url.EncodeToString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16)), protocol = 2 }),
        };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", jwt);
        using HttpResponseMessage response = await _http!.SendAsync(request);
        return response.StatusCode;
    }
}
