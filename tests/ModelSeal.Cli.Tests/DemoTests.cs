namespace ModelSeal.Cli.Tests;

public sealed class DemoTests
{
    [Fact]
    public async Task Demo_runs_server_key_release_and_onnx_runtime_end_to_end_and_leaves_nothing_behind()
    {
        string[] before = Directory.GetDirectories(Path.GetTempPath(), "modelseal-demo-*");
        CliResult result = await Workspace.RunAsync("demo");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("key server at http://127.0.0.1:", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("fetched over HTTP", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("identical to the plaintext model's outputs", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("rejected before anything reached ONNX Runtime", result.Stdout, StringComparison.Ordinal);
        Assert.EndsWith("demo passed." + Environment.NewLine, result.Stdout, StringComparison.Ordinal);
        Assert.Empty(result.Stderr);
        Assert.Equal(before, Directory.GetDirectories(Path.GetTempPath(), "modelseal-demo-*"));
    }

    [Fact]
    public async Task Demo_json_prints_one_object_and_its_report_on_stderr()
    {
        CliResult result = await Workspace.RunAsync("demo", "--json");

        Assert.True(result.ExitCode == 0, result.ToString());
        System.Text.Json.JsonElement json = result.Json();
        Assert.Equal("demo", json.GetProperty("command").GetString());
        Assert.True(json.GetProperty("passed").GetBoolean());
        Assert.True(json.GetProperty("outputsMatch").GetBoolean());
        Assert.True(json.GetProperty("tamperRejected").GetBoolean());
        Assert.StartsWith("lic_", json.GetProperty("licenceId").GetString(), StringComparison.Ordinal);
        Assert.Contains("fetched over HTTP", result.Stderr, StringComparison.Ordinal);
    }
}
