namespace ModelSeal.Cli.Tests;

public sealed class DemoTests
{
    [Fact]
    public async Task Demo_runs_the_whole_workflow_on_the_embedded_sample_and_leaves_nothing_behind()
    {
        string[] before = Directory.GetDirectories(Path.GetTempPath(), "modelseal-demo-*");
        CliResult result = await Workspace.RunAsync("demo");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("sha256 491843a3c65de46295864c6815e41127eaa812c4dac1e19c6850ec49da9d3640", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("sha256 matches the original", result.Stdout, StringComparison.Ordinal);
        Assert.Equal(2, result.Stdout.Split("rejected, nothing released").Length - 1);
        Assert.Contains("demo passed", result.Stdout, StringComparison.Ordinal);
        Assert.Empty(result.Stderr);
        Assert.Equal(before, Directory.GetDirectories(Path.GetTempPath(), "modelseal-demo-*"));
    }
}
