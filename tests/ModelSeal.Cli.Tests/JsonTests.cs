using System.Text.Json;

namespace ModelSeal.Cli.Tests;

/// <summary>--json on every verb: one JSON document on standard output, camelCase members, errors still on standard error.</summary>
public sealed class JsonTests
{
    [Theory]
    [MemberData(nameof(CommandTree.VerbNames), MemberType = typeof(CommandTree))]
    public async Task Every_verb_accepts_json(string verb)
    {
        CliResult help = await Workspace.RunAsync([.. verb.Split(' '), "--help"]);

        Assert.Equal(ExitCodes.Success, help.ExitCode);
        Assert.Matches(@"\n  --json +\S", help.Stdout);
    }

    [Fact]
    public async Task Keygen_json_names_the_key_id_and_file_and_never_the_key()
    {
        using var ws = new Workspace();

        CliResult result = await Workspace.RunAsync("keygen", "--out", ws["dev.key"], "--key-id", "dev-1", "--json");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal(string.Empty, result.Stderr);
        JsonElement json = result.Json();
        Assert.Equal("keygen", json.GetProperty("command").GetString());
        Assert.Equal("dev-1", json.GetProperty("keyId").GetString());
        Assert.Equal(ws["dev.key"], json.GetProperty("output").GetString());
        Assert.Equal(["command", "output", "keyId"], json.EnumerateObject().Select(p => p.Name));
        string hex = File.ReadAllLines(ws["dev.key"]).Single(l => l.StartsWith("key: ", StringComparison.Ordinal))[5..];
        Assert.DoesNotContain(hex, result.Stdout, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_failing_verb_with_json_prints_its_error_on_stderr_and_nothing_on_stdout()
    {
        using var ws = new Workspace();
        File.WriteAllText(ws["taken.key"], "x");

        CliResult result = await Workspace.RunAsync("keygen", "--out", ws["taken.key"], "--json");

        Assert.Equal(ExitCodes.IoError, result.ExitCode);
        Assert.Equal(string.Empty, result.Stdout);
        Asserts.ErrorWithHint(result, "already exists");
    }

    [Fact]
    public async Task Serve_json_prints_one_object_once_listening()
    {
        using var ws = new Workspace();
        using var stop = new CancellationTokenSource();
        using var output = new LineSignal("{\"command\":\"serve\"");
        using var stderr = new StringWriter();
        Task<int> serve = Host.Cli.RunAsync(
            ["serve", "--data", ws["data"], "--urls", "http://127.0.0.1:0", "--admin-credential-out", ws["admin.credential"], "--json"],
            new CliContext(output, stderr, Interactive: false),
            stop.Token);

        Task first = await Task.WhenAny(output.Seen, serve);
        Assert.True(first == output.Seen, serve.IsCompleted ? $"exit {await serve}: {stderr}" : "no output");
        using JsonDocument document = JsonDocument.Parse(output.ToString());
        JsonElement json = document.RootElement;

        // The answer key it names is the one the server publishes for answers (what clients pin).
        using (var http = new HttpClient())
        {
            using JsonDocument jwks = JsonDocument.Parse(await http.GetStringAsync(new Uri(json.GetProperty("urls")[0].GetString() + "/.well-known/jwks.json"), TestContext.Current.CancellationToken));
            JsonElement answerKey = jwks.RootElement.GetProperty("keys").EnumerateArray().Single(k => k.GetProperty("purpose").GetString() == "answer");
            Assert.Equal(answerKey.GetProperty("kid").GetString(), json.GetProperty("answerKeyId").GetString());
        }

        await stop.CancelAsync();
        Assert.Equal(ExitCodes.Success, await serve);

        Assert.Equal("serve", json.GetProperty("command").GetString());
        Assert.StartsWith("http://127.0.0.1:", json.GetProperty("urls")[0].GetString(), StringComparison.Ordinal);
        Assert.Equal(ws["data"], json.GetProperty("dataDirectory").GetString());
        Assert.Equal(ws["admin.credential"], json.GetProperty("adminCredentialWritten").GetString());
        Assert.Contains("modelseal key server stopped.", stderr.ToString(), StringComparison.Ordinal);
    }
}
