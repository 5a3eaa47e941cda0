namespace ModelSeal.Cli.Tests;

/// <summary>Runs the real built CLI (ModelSeal.Cli.dll, the `modelseal` command) as a child process: checks the Program.Main wiring end to end.</summary>
public sealed class ProcessTests
{
    [Fact]
    public async Task The_built_cli_reports_a_plain_model_as_not_sealed_with_exit_code_3()
    {
        using var process = CliProcess.Start(["inspect", RepoPaths.SampleModel]);

        CliResult result = await process.WaitAsync();

        Assert.True(result.ExitCode == ExitCodes.FormatError, result.ToString());
        Assert.Equal(string.Empty, result.Stdout);
        string[] lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.StartsWith("error: ", lines[0], StringComparison.Ordinal);
        Assert.Contains("is not a sealed model", lines[0], StringComparison.Ordinal);
        Assert.StartsWith("hint: ", lines[1], StringComparison.Ordinal);
        Assert.Equal(2, lines.Length);
    }
}
