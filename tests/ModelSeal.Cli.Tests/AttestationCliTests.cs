namespace ModelSeal.Cli.Tests;

/// <summary>
/// The attestation verbs against the real key server (issue 15's server part: the re-verification endpoint and the
/// licence's attestation policy). They pass only with that part merged; <see cref="AttestationVerbTests"/> covers the CLI
/// alone against a stand-in server.
/// </summary>
public sealed class AttestationCliTests : IAsyncLifetime
{
    private readonly Workspace _work = new();
    private TestKeyServer? _server;

    public async ValueTask InitializeAsync() =>
        _server = await TestKeyServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _work.Dispose();
    }

    [Fact]
    public async Task Reverify_on_a_server_without_attestations_checks_none_and_exits_0()
    {
        CliResult table = await Admin("attestation", "reverify");
        CliResult json = await Admin("attestation", "reverify", "--json");

        Assert.True(table.ExitCode == 0, table.ToString());
        Assert.EndsWith(": none rejected", table.Stdout.Trim(), StringComparison.Ordinal);
        Assert.True(json.ExitCode == 0, json.ToString());
        Assert.Equal(0, json.Json().GetProperty("checked").GetInt32());
        Assert.Equal(0, json.Json().GetProperty("rejected").GetArrayLength());
    }

    [Fact]
    public async Task A_licence_naming_an_unconfigured_policy_is_refused_and_not_created()
    {
        CliResult refused = await Admin("licence", "add", "--subject", "phones", "--models", "*", "--attestation-policy", "no-such-policy", "--out", _work["phones.credential"]);

        Assert.Equal(ExitCodes.ServerError, refused.ExitCode);
        Asserts.ErrorWithHint(refused, "invalid-request");
        Assert.Contains("hint: check the attestation policy name 'no-such-policy'", refused.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(_work["phones.credential"]));
        CliResult list = await Admin("licence", "list", "--json");
        Assert.Equal(0, list.Json().GetProperty("licences").GetArrayLength());
    }

    [Fact]
    public async Task Removing_the_policy_of_a_licence_without_one_changes_nothing()
    {
        CliResult added = await Admin("licence", "add", "--subject", "desktops", "--models", "*", "--out", _work["desktops.credential"], "--json");
        Assert.True(added.ExitCode == 0, added.ToString());
        string id = added.Json().GetProperty("licence").GetProperty("licenceId").GetString()!;
        Assert.Equal(System.Text.Json.JsonValueKind.Null, added.Json().GetProperty("licence").GetProperty("attestationPolicy").ValueKind);

        CliResult removed = await Admin("licence", "edit", id, "--no-attestation-policy", "--json");

        Assert.True(removed.ExitCode == 0, removed.ToString());
        Assert.Equal(0, removed.Json().GetProperty("changed").GetArrayLength());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, removed.Json().GetProperty("licence").GetProperty("attestationPolicy").ValueKind);
    }

    private Task<CliResult> Admin(params string[] args) => Workspace.RunAsync([.. args, "--server", _server!.Url, "--admin-credential-file", _server.AdminCredentialFile]);
}
