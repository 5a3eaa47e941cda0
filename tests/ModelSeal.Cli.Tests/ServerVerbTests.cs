using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ModelSeal.Hpke;
using ModelSeal.Server.Files;

namespace ModelSeal.Cli.Tests;

/// <summary>
/// The server verbs against a real key server (Kestrel on 127.0.0.1, SQLite in a temporary data directory): a model
/// sealed with <c>encrypt --server</c> opens with a key a device obtains with a licence made by <c>licence add</c>.
/// </summary>
public sealed class ServerVerbTests : IAsyncLifetime
{
    private readonly Workspace _work = new();
    private TestKeyServer? _server;

    private string Url => _server!.Url;

    private string Credential => _server!.AdminCredentialFile;

    public async ValueTask InitializeAsync() => _server = await TestKeyServer.StartAsync();

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _work.Dispose();
    }

    private Task<CliResult> Admin(params string[] args) => Workspace.RunAsync([.. args, "--server", Url, "--admin-credential-file", Credential]);

    [Fact]
    public async Task The_admin_credential_is_rotated_offline_and_the_admin_verbs_take_the_new_file()
    {
        string data = _work["rotating-data"];
        string first = _work["first.credential"];
        string second = _work["second.credential"];
        await using (TestKeyServer server = await TestKeyServer.StartAsync(options => options.AdminCredentialOut = first, dataDirectory: data))
        {
            CliResult added = await Workspace.RunAsync("model", "add", "rotating", "--server", server.Url, "--admin-credential-file", first);
            Assert.True(added.ExitCode == 0, added.ToString());
        }

        Assert.False(File.Exists(Path.Combine(data, "admin.credential")), "the data directory holds no admin credential");
        CliResult inside = await Workspace.RunAsync("admin-credential", "rotate", "--data", data, "--out", Path.Combine(data, "new.credential"));
        Assert.Equal(ExitCodes.Usage, inside.ExitCode);
        Asserts.ErrorWithHint(inside, "inside the data directory");

        CliResult rotated = await Workspace.RunAsync("admin-credential", "rotate", "--data", data, "--out", second);
        Assert.True(rotated.ExitCode == 0, rotated.ToString());
        Assert.Contains(second, rotated.Stdout, StringComparison.Ordinal);
        Assert.Contains("admin epoch 2", rotated.Stdout, StringComparison.Ordinal);
        string credential = File.ReadAllText(second).Trim();
        Assert.DoesNotContain(credential, rotated.Stdout + rotated.Stderr, StringComparison.Ordinal);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(second));
        }

        CliResult json = await Workspace.RunAsync("admin-credential", "rotate", "--data", data, "--out", _work["third.credential"], "--json");
        Assert.True(json.ExitCode == 0, json.ToString());
        Assert.Equal(("admin-credential rotate", _work["third.credential"], 3), (json.Json().GetProperty("command").GetString(), json.Json().GetProperty("credentialFile").GetString(), json.Json().GetProperty("epoch").GetInt64()));
        Assert.DoesNotContain(File.ReadAllText(_work["third.credential"]).Trim(), json.Stdout, StringComparison.Ordinal);

        await using (TestKeyServer server = await TestKeyServer.StartAsync(options => options.AdminCredentialOut = first, dataDirectory: data))
        {
            CliResult old = await Workspace.RunAsync("model", "list", "--server", server.Url, "--admin-credential-file", first);
            Assert.NotEqual(0, old.ExitCode);
            Assert.Contains("admin credential", old.Stderr, StringComparison.Ordinal);
            CliResult listed = await Workspace.RunAsync("model", "list", "--server", server.Url, "--admin-credential-file", _work["third.credential"]);
            Assert.True(listed.ExitCode == 0, listed.ToString());
            Assert.Contains("rotating", listed.Stdout, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Publisher_and_device_flow_end_to_end()
    {
        Assert.Equal(0, (await Admin("model", "add", "classifier")).ExitCode);
        CliResult sealedRun = await Admin("encrypt", RepoPaths.SampleModel, "--model-id", "classifier", "--out", _work["cls.mseal"]);
        Assert.True(sealedRun.ExitCode == 0, sealedRun.ToString());
        SealedModelHeader header = await SealedModelHeader.ReadAsync(File.OpenRead(_work["cls.mseal"]));
        Assert.Equal("1", header.ModelVersion);

        CliResult licence = await Admin("licence", "add", "--subject", "device-owner-1", "--models", "classifier", "--max-devices", "2", "--out", _work["licence.credential"]);
        Assert.True(licence.ExitCode == 0, licence.ToString());
        string credential = File.ReadAllText(_work["licence.credential"]).Trim();
        Assert.DoesNotContain(credential, licence.Stdout + licence.Stderr, StringComparison.Ordinal);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_work["licence.credential"]));
        }

        string licenceId = licence.Stdout.Split(' ')[2];
        Assert.StartsWith("lic_", licenceId, StringComparison.Ordinal);
        Assert.Contains(licenceId, (await Admin("licence", "list")).Stdout, StringComparison.Ordinal);

        CliResult token = await Workspace.RunAsync("token", "issue", "--licence", licenceId, "--credential-file", _work["licence.credential"], "--server", Url);
        Assert.True(token.ExitCode == 0, token.ToString());
        string jwt = token.Stdout.Trim();
        Assert.Equal(3, jwt.Split('.').Length);

        using HpkeKeyPair device = HpkeKeyPair.Generate();
        using var http = new HttpClient { BaseAddress = new Uri(Url) };
        using HttpResponseMessage released = await ReleaseAsync(http, jwt, device);
        Assert.Equal(HttpStatusCode.OK, released.StatusCode);
        JsonElement answer = await released.Content.ReadFromJsonAsync<JsonElement>();
        using ModelKey key = KeyRelease.Open(
            device,
            System.Buffers.Text.Base64Url.DecodeFromChars(answer.GetProperty("enc").GetString()!),
            System.Buffers.Text.Base64Url.DecodeFromChars(answer.GetProperty("sealedKey").GetString()!),
            "classifier",
            answer.GetProperty("version").GetString()!,
            answer.GetProperty("keyId").GetString()!,
            "device-owner-1",
            answer.GetProperty("leaseExpiresAt").GetDateTimeOffset());
        await using (FileStream file = File.OpenRead(_work["cls.mseal"]))
        {
            using DecryptedModel model = await SealedModel.DecryptAsync(file, key);
            Assert.True(model.Span.SequenceEqual(File.ReadAllBytes(RepoPaths.SampleModel)));
        }

        Assert.Equal(0, (await Admin("licence", "revoke", licenceId)).ExitCode);
        using HttpResponseMessage refused = await ReleaseAsync(http, jwt, device);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);

        CliResult audit = await Admin("audit", "--json");
        Assert.True(audit.ExitCode == 0, audit.ToString());
        string[] events = [.. audit.Json().GetProperty("items").EnumerateArray().Select(i => i.GetProperty("event").GetString()!)];
        Assert.Contains("key.released", events);
        Assert.Contains("licence.revoked", events);
        Assert.DoesNotContain(credential, audit.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_US_spellings_license_and_dash_dash_license_are_aliases()
    {
        Assert.Equal(0, (await Admin("model", "add", "classifier")).ExitCode);
        CliResult licence = await Admin("license", "add", "--subject", "device-owner-2", "--models", "classifier", "--out", _work["us.credential"]);
        Assert.True(licence.ExitCode == 0, licence.ToString());
        string licenceId = licence.Stdout.Split(' ')[2];
        Assert.StartsWith("created licence lic_", licence.Stdout, StringComparison.Ordinal);
        Assert.Contains(licenceId, (await Admin("license", "list")).Stdout, StringComparison.Ordinal);

        CliResult token = await Workspace.RunAsync("token", "issue", "--license", licenceId, "--credential-file", _work["us.credential"], "--server", Url);
        Assert.True(token.ExitCode == 0, token.ToString());
        Assert.Equal(3, token.Stdout.Trim().Split('.').Length);

        Assert.Equal(0, (await Admin("license", "revoke", licenceId)).ExitCode);
    }

    [Fact]
    public async Task Credentials_and_servers_that_fail_give_named_exit_codes()
    {
        OwnerOnlyFile.Write(_work["wrong.credential"], "not-the-credential");
        CliResult wrong = await Workspace.RunAsync("model", "list", "--server", Url, "--admin-credential-file", _work["wrong.credential"]);
        Assert.Equal(7, wrong.ExitCode);
        Assert.Contains($"error: the key server at {Url}/ refused", wrong.Stderr, StringComparison.Ordinal);
        Assert.Contains("hint:", wrong.Stderr, StringComparison.Ordinal);

        CliResult none = await Workspace.RunAsync("model", "list", "--server", Url);
        Assert.Equal(5, none.ExitCode);
        Assert.Contains("admin credential", none.Stderr, StringComparison.Ordinal);

        CliResult unreachable = await Workspace.RunAsync("model", "list", "--server", "http://127.0.0.1:1", "--admin-credential-file", Credential);
        Assert.Equal(7, unreachable.ExitCode);
        Assert.Contains("cannot reach the key server", unreachable.Stderr, StringComparison.Ordinal);

        CliResult both = await Workspace.RunAsync("encrypt", RepoPaths.SampleModel, "--model-id", "m", "--out", _work["x.mseal"]);
        Assert.Equal(2, both.ExitCode);
        Assert.False(File.Exists(_work["x.mseal"]));
    }

    [Fact]
    public async Task The_server_verbs_print_one_json_object_with_camel_case_members()
    {
        CliResult added = await Admin("model", "add", "classifier", "--json");
        Assert.True(added.ExitCode == 0, added.ToString());
        Assert.Equal(("model add", "classifier"), (added.Json().GetProperty("command").GetString(), added.Json().GetProperty("modelId").GetString()));
        Assert.Equal(0, (await Admin("encrypt", RepoPaths.SampleModel, "--model-id", "classifier", "--out", _work["cls.mseal"])).ExitCode);

        CliResult models = await Admin("model", "list", "--json");
        Assert.True(models.ExitCode == 0, models.ToString());
        JsonElement model = models.Json().GetProperty("models").EnumerateArray().Single();
        Assert.Equal("classifier", model.GetProperty("modelId").GetString());
        Assert.Equal(["version", "state", "keyId", "createdAt"], model.GetProperty("versions")[0].EnumerateObject().Select(p => p.Name));

        CliResult licence = await Admin("licence", "add", "--subject", "s", "--models", "classifier", "--out", _work["l.credential"], "--json");
        Assert.True(licence.ExitCode == 0, licence.ToString());
        Assert.Equal(string.Empty, licence.Stderr);
        JsonElement created = licence.Json();
        string licenceId = created.GetProperty("licence").GetProperty("licenceId").GetString()!;
        Assert.Equal(_work["l.credential"], created.GetProperty("credentialFile").GetString());
        Assert.Equal(0, created.GetProperty("warnings").GetArrayLength());
        Assert.DoesNotContain(File.ReadAllText(_work["l.credential"]).Trim(), licence.Stdout, StringComparison.Ordinal);

        CliResult list = await Admin("licence", "list", "--json");
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Equal(licenceId, list.Json().GetProperty("licences").EnumerateArray().Single().GetProperty("licenceId").GetString());

        CliResult token = await Workspace.RunAsync("token", "issue", "--licence", licenceId, "--credential-file", _work["l.credential"], "--server", Url, "--json");
        Assert.True(token.ExitCode == 0, token.ToString());
        Assert.Equal(3, token.Json().GetProperty("accessToken").GetString()!.Split('.').Length);
        Assert.True(token.Json().GetProperty("expiresIn").GetInt32() > 0);
        Assert.Contains("warning: this token grants key release", token.Stderr, StringComparison.Ordinal);

        foreach (CliResult result in new[] { added, models, licence, list, token })
        {
            Assert.Single(result.Stdout.Trim().Split('\n'));
        }
    }

    [Fact]
    public async Task Licence_add_warns_on_stderr_about_a_past_expiry_and_an_unknown_model()
    {
        Assert.Equal(0, (await Admin("model", "add", "classifier")).ExitCode);

        CliResult human = await Admin("licence", "add", "--subject", "s", "--models", "classifier,clasifier", "--expires", "2020-01-01", "--out", _work["a.credential"]);
        CliResult json = await Admin("licence", "add", "--subject", "s", "--models", "clasifier", "--out", _work["b.credential"], "--json");
        CliResult fine = await Admin("licence", "add", "--subject", "s", "--models", "classifier", "--expires", "2099-01-01", "--out", _work["c.credential"]);

        Assert.True(human.ExitCode == 0, human.ToString());
        Assert.Contains("warning: --expires 2020-01-01T00:00:00Z is in the past", human.Stderr, StringComparison.Ordinal);
        Assert.Contains("warning: the key server has no model 'clasifier'", human.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("'classifier'", human.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("warning", human.Stdout, StringComparison.Ordinal);
        Assert.True(json.ExitCode == 0, json.ToString());
        Assert.Contains("no model 'clasifier'", json.Json().GetProperty("warnings")[0].GetString(), StringComparison.Ordinal);
        Assert.Contains("warning: the key server has no model 'clasifier'", json.Stderr, StringComparison.Ordinal);
        Assert.True(fine.ExitCode == 0, fine.ToString());
        Assert.Equal(string.Empty, fine.Stderr);
    }

    [Fact]
    public async Task Revoking_twice_says_the_licence_was_already_revoked()
    {
        string licenceId = await LicensedClassifierAsync("l.credential");

        CliResult first = await Admin("licence", "revoke", licenceId);
        CliResult second = await Admin("licence", "revoke", licenceId);
        CliResult third = await Admin("licence", "revoke", licenceId, "--json");

        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.StartsWith($"revoked licence {licenceId}", first.Stdout, StringComparison.Ordinal);
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Matches($"^licence {licenceId} \\(s\\) was already revoked at \\d{{4}}-.*; nothing changed\\.", second.Stdout);
        Assert.True(third.Json().GetProperty("alreadyRevoked").GetBoolean());
        Assert.Single((await Admin("audit", "--json")).Json().GetProperty("items").EnumerateArray(), i => i.GetProperty("event").GetString() == "licence.revoked");
    }

    [Fact]
    public async Task Licence_list_and_audit_are_tables_with_headers_and_aligned_columns()
    {
        Assert.Equal(0, (await Admin("model", "add", "classifier")).ExitCode);
        Assert.Equal(0, (await Admin("licence", "add", "--subject", "short", "--models", "classifier", "--out", _work["a.credential"])).ExitCode);
        Assert.Equal(0, (await Admin("licence", "add", "--subject", "a-much-longer-subject", "--models", "*", "--expires", "2099-01-01", "--out", _work["b.credential"])).ExitCode);

        CliResult licences = await Admin("licence", "list");
        CliResult audit = await Admin("audit");

        AssertTable(licences, ["LICENCE", "SUBJECT", "MODELS", "DEVICES", "NOT BEFORE", "EXPIRES", "ATTESTATION", "STATE"], rows: 2);
        AssertTable(audit, ["ID", "TIME", "EVENT", "OUTCOME", "SUBJECT", "LICENCE", "MODEL", "VERSION", "DEVICE", "CLIENT"], rows: 3);
    }

    /// <summary>Adds the model 'classifier' and a licence for it (subject "s"), its credential in <paramref name="credential"/>; returns the licence id.</summary>
    private async Task<string> LicensedClassifierAsync(string credential)
    {
        Assert.Equal(0, (await Admin("model", "add", "classifier")).ExitCode);
        CliResult licence = await Admin("licence", "add", "--subject", "s", "--models", "classifier", "--out", _work[credential]);
        Assert.True(licence.ExitCode == 0, licence.ToString());
        return licence.Stdout.Split(' ')[2];
    }

    private static void AssertTable(CliResult result, string[] headers, int rows)
    {
        Assert.True(result.ExitCode == 0, result.ToString());
        string[] lines = result.Stdout.TrimEnd().Split('\n');
        Assert.Equal(rows + 1, lines.Length);
        Assert.Matches("^" + string.Join(" {2,}", headers) + "$", lines[0]);

        // Every column starts where its header starts, in every row.
        int[] starts = [.. headers.Select(h => lines[0].IndexOf(h, StringComparison.Ordinal))];
        foreach (string line in lines.Skip(1))
        {
            Assert.Equal(line.TrimEnd(), line);
            foreach (int start in starts.Skip(1))
            {
                Assert.True(line.Length > start && line[start - 1] == ' ' && line[start] != ' ', $"column at {start} is not aligned in: {line}");
            }
        }
    }

    [Fact]
    public async Task A_wrong_licence_credential_is_not_blamed_on_the_admin_credential()
    {
        string licenceId = await LicensedClassifierAsync("l.credential");
        OwnerOnlyFile.Write(_work["wrong.credential"], "not-the-credential");

        CliResult token = await Workspace.RunAsync("token", "issue", "--licence", licenceId, "--credential-file", _work["wrong.credential"], "--server", Url);

        Assert.Equal(ExitCodes.ServerError, token.ExitCode);
        Assert.Contains("(401", token.Stderr, StringComparison.Ordinal);
        Assert.Contains("hint: check --licence and --credential-file", token.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("admin", token.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_conflict_says_what_conflicts()
    {
        Assert.Equal(0, (await Admin("model", "add", "classifier")).ExitCode);

        CliResult again = await Admin("model", "add", "classifier");

        Assert.Equal(ExitCodes.ServerError, again.ExitCode);
        Assert.Contains("'classifier' already exists", again.Stderr, StringComparison.Ordinal);
        Assert.Contains("hint: that model id is taken: 'modelseal model list' shows it", again.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_credential_file_other_users_can_read_is_refused_before_use()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("Owner-only files are not checked on Windows yet.");
            return;
        }

        File.Copy(Credential, _work["shared.credential"]);
        File.SetUnixFileMode(_work["shared.credential"], UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        CliResult admin = await Workspace.RunAsync("model", "list", "--server", Url, "--admin-credential-file", _work["shared.credential"]);
        Assert.Equal(5, admin.ExitCode);
        Assert.Contains("is accessible by other users", admin.Stderr, StringComparison.Ordinal);
        Assert.Contains("hint: make it owner-only: chmod 600", admin.Stderr, StringComparison.Ordinal);

        CliResult token = await Workspace.RunAsync("token", "issue", "--licence", "lic_x", "--credential-file", _work["shared.credential"], "--server", Url);
        Assert.Equal(5, token.ExitCode);
        Assert.Contains("the licence credential file", token.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Encrypt_with_a_server_creates_a_missing_model_audited_as_the_build_task_does()
    {
        // The same expectation as ModelSeal.Build.Tests.KeyServerTests: both publish through one admin client.
        CliResult sealedRun = await Admin("encrypt", RepoPaths.SampleModel, "--model-id", "fresh", "--out", _work["fresh.mseal"]);
        Assert.True(sealedRun.ExitCode == 0, sealedRun.ToString());
        Assert.Equal(("fresh", "1"), await HeaderOf(_work["fresh.mseal"]));

        CliResult audit = await Admin("audit", "--json");
        Assert.True(audit.ExitCode == 0, audit.ToString());
        using JsonDocument page = JsonDocument.Parse(audit.Stdout);
        var changes = page.RootElement.GetProperty("items").EnumerateArray()
            .Where(r => r.TryGetProperty("modelId", out _))
            .Select(r => (r.GetProperty("event").GetString(), r.GetProperty("modelId").GetString(), r.TryGetProperty("version", out JsonElement v) ? v.GetString() : null))
            .ToList();
        Assert.Equal([("model.created", "fresh", null), ("version.created", "fresh", "1")], changes);
    }

    [Theory]
    [InlineData("model", "list", "--admin-credential-file")]
    [InlineData("token", "issue", "--licence", "lic_x", "--credential-file")]
    public async Task Plain_http_to_a_host_that_is_not_loopback_is_refused_before_anything_is_read_or_sent(params string[] verb)
    {
        // The credential file does not exist and the host does not resolve: the address check comes first.
        CliResult refused = await Workspace.RunAsync([.. verb, _work["missing.credential"], "--server", "http://modelseal-test.invalid:5380"]);
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("error: refusing plain http:// to 'modelseal-test.invalid'", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("MODELSEAL_ALLOW_INSECURE_HTTP=1", refused.Stderr, StringComparison.Ordinal);
    }

    private static async Task<(string, string)> HeaderOf(string path)
    {
        await using FileStream file = File.OpenRead(path);
        SealedModelHeader header = await SealedModelHeader.ReadAsync(file);
        return (header.ModelId, header.ModelVersion);
    }

    [Fact]
    public async Task Audit_verify_shows_the_signed_checkpoint_of_the_last_stop_and_fails_on_a_log_cut_before_it()
    {
        string data = _work["checkpointed-data"];
        string credential = _work["checkpointed.credential"];
        await using (TestKeyServer server = await TestKeyServer.StartAsync(options => options.AdminCredentialOut = credential, dataDirectory: data))
        {
            foreach (string model in new[] { "a", "b", "c" })
            {
                Assert.Equal(0, (await Workspace.RunAsync("model", "add", model, "--server", server.Url, "--admin-credential-file", credential)).ExitCode);
            }
        }

        // The stop signed a checkpoint of the three records; the next server checks it.
        await using TestKeyServer restarted = await TestKeyServer.StartAsync(dataDirectory: data);
        string[] admin = ["--server", restarted.Url, "--admin-credential-file", credential];
        CliResult intact = await Workspace.RunAsync(["audit", "verify", .. admin]);
        Assert.True(intact.ExitCode == 0, intact.ToString());
        Assert.Matches(@"\nlatest signed checkpoint: 3 records up to record 3, at \S+Z, answer key \S+: verified\n", intact.Stdout);
        CliResult json = await Workspace.RunAsync(["audit", "verify", "--json", .. admin]);
        JsonElement checkpoint = json.Json().GetProperty("checkpoint");
        Assert.True(checkpoint.GetProperty("verified").GetBoolean(), json.Stdout);
        Assert.Equal(3, checkpoint.GetProperty("records").GetInt64());
        Assert.Equal(json.Json().GetProperty("lastHash").GetString(), checkpoint.GetProperty("lastHash").GetString());

        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(data, "modelseal.db")};Pooling=False"))
        {
            connection.Open();
            using Microsoft.Data.Sqlite.SqliteCommand command = connection.CreateCommand();
            command.CommandText = "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 3;";
            command.ExecuteNonQuery();
        }

        CliResult cut = await Workspace.RunAsync(["audit", "verify", .. admin]);
        Assert.Equal(8, cut.ExitCode);
        Assert.Equal(string.Empty, cut.Stdout);
        Assert.Contains("the log has 2 records and ends before the latest signed checkpoint (3 records up to record 3", cut.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Audit_verify_reports_an_intact_log_and_exits_8_on_a_broken_one()
    {
        Assert.Equal(0, (await Admin("model", "add", "a")).ExitCode);
        Assert.Equal(0, (await Admin("model", "add", "b")).ExitCode);
        Assert.Equal(0, (await Admin("model", "add", "c")).ExitCode);

        CliResult intact = await Admin("audit", "verify");
        Assert.True(intact.ExitCode == 0, intact.ToString());
        Assert.StartsWith("audit log intact: 3 records, head ", intact.Stdout, StringComparison.Ordinal);
        Assert.Equal("no signed checkpoint yet", intact.Stdout.Trim().Split('\n')[1]);
        Assert.Equal(2, intact.Stdout.Trim().Split('\n').Length);

        CliResult json = await Admin("audit", "verify", "--json");
        Assert.True(json.ExitCode == 0, json.ToString());
        JsonElement head = json.Json();
        Assert.True(head.GetProperty("verified").GetBoolean());
        Assert.Equal(3, head.GetProperty("records").GetInt64());
        string lastHash = head.GetProperty("lastHash").GetString()!;
        Assert.Contains(lastHash, intact.Stdout, StringComparison.Ordinal);

        // The plain listing still works and shows each record's hash in JSON.
        CliResult listing = await Admin("audit", "--json");
        Assert.True(listing.ExitCode == 0, listing.ToString());
        Assert.Equal(lastHash, listing.Json().GetProperty("items")[2].GetProperty("hash").GetString());

        CliResult half = await Admin("audit", "verify", "--expect-records", "3");
        Assert.Equal(2, half.ExitCode);

        // Someone with the database file removes the last record: only a kept head shows it.
        Tamper("DELETE FROM audit WHERE id = 3;");
        Assert.Equal(0, (await Admin("audit", "verify")).ExitCode);
        CliResult truncated = await Admin("audit", "verify", "--expect-records", "3", "--expect-hash", lastHash);
        Assert.Equal(8, truncated.ExitCode);
        Assert.Contains("error: the audit log is broken: the log has 2 records where 3 were expected", truncated.Stderr, StringComparison.Ordinal);
        Assert.Contains("hint:", truncated.Stderr, StringComparison.Ordinal);

        // ... or alters one.
        Tamper("UPDATE audit SET outcome = 'forged' WHERE id = 1;");
        CliResult broken = await Admin("audit", "verify");
        Assert.Equal(8, broken.ExitCode);
        Assert.Equal(string.Empty, broken.Stdout);
        Assert.Contains("error: the audit log is broken at record 1: record 1 does not chain", broken.Stderr, StringComparison.Ordinal);
        Assert.Contains("hint:", broken.Stderr, StringComparison.Ordinal);

        CliResult brokenJson = await Admin("audit", "verify", "--json");
        Assert.Equal(8, brokenJson.ExitCode);
        Assert.False(brokenJson.Json().GetProperty("verified").GetBoolean());
        Assert.Equal(1, brokenJson.Json().GetProperty("firstBadId").GetInt64());
    }

    private void Tamper(string sql)
    {
        using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(_server!.DataDirectory, "modelseal.db")};Pooling=False");
        connection.Open();
        using Microsoft.Data.Sqlite.SqliteCommand command = connection.CreateCommand();
        command.CommandText = "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete; " + sql;
        command.ExecuteNonQuery();
    }

    private static async Task<HttpResponseMessage> ReleaseAsync(HttpClient http, string jwt, HpkeKeyPair device)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/keys/release")
        {
            Content = JsonContent.Create(new { modelId = "classifier", version = "latest", devicePublicKey = System.Buffers.Text.Base64Url.EncodeToString(device.PublicKey.Encoded.Span), nonce = System.Buffers.Text.Base64Url.EncodeToString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16)), protocol = 2 }),
        };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", jwt);
        return await http.SendAsync(request);
    }
}
