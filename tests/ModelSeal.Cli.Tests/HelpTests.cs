namespace ModelSeal.Cli.Tests;

public sealed class HelpTests
{
    [Theory]
    [InlineData("keygen", "Create a new random data key", "--key-id")]
    [InlineData("encrypt", "Seal a model file", "--model-version")]
    [InlineData("decrypt", "Open a sealed model into a plaintext file", "--out")]
    [InlineData("verify", "authenticate the header and every chunk", "--key")]
    [InlineData("inspect", "Authenticates nothing", "--json")]
    public async Task Every_verb_has_help_with_a_description_and_examples(string verb, string description, string option)
    {
        CliResult result = await Workspace.RunAsync(verb, "--help");

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        Assert.Contains(description, result.Stdout, StringComparison.Ordinal);
        Assert.Contains(option, result.Stdout, StringComparison.Ordinal);
        Assert.Contains("Examples:", result.Stdout, StringComparison.Ordinal);
        Assert.Contains($"modelseal {verb}", result.Stdout, StringComparison.Ordinal);
        Assert.Equal(string.Empty, result.Stderr);
    }

    [Fact]
    public async Task Root_help_lists_every_verb()
    {
        CliResult result = await Workspace.RunAsync("--help");

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        foreach (string verb in new[] { "keygen", "encrypt", "decrypt", "verify", "inspect" })
        {
            Assert.Contains(verb, result.Stdout, StringComparison.Ordinal);
        }
    }
}
