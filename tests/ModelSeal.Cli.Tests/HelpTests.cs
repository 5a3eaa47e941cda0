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

    [Theory]
    [InlineData("licence")]
    [InlineData("license")]
    public async Task Help_spells_licence_and_names_license_only_as_an_alias(string verb)
    {
        CliResult root = await Workspace.RunAsync("--help");
        CliResult licence = await Workspace.RunAsync(verb, "--help");
        CliResult add = await Workspace.RunAsync(verb, "add", "--help");
        CliResult token = await Workspace.RunAsync("token", "issue", "--help");

        Assert.Matches(@"\n  licence, license +Manage licences on a key server\.", root.Stdout);
        Assert.Contains("modelseal licence [command]", licence.Stdout, StringComparison.Ordinal);
        Assert.Contains("modelseal licence add", add.Stdout, StringComparison.Ordinal);
        Assert.Contains("--licence, --license <LICENCE-ID>", token.Stdout, StringComparison.Ordinal);
        Assert.Contains("'modelseal licence add'", token.Stdout, StringComparison.Ordinal);
        foreach (CliResult help in new[] { licence, add, token })
        {
            Assert.Equal(ExitCodes.Success, help.ExitCode);
            Assert.DoesNotContain("license", help.Stdout.Replace("--licence, --license", "--licence", StringComparison.Ordinal), StringComparison.Ordinal);
        }
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

    [Fact]
    public async Task Bare_modelseal_prints_the_usage_as_a_usage_error()
    {
        CliResult result = await Workspace.RunAsync();
        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("Usage:", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("decrypt", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(string.Empty, result.Stdout);
    }

    [Fact]
    public async Task The_help_verb_is_the_help_option()
    {
        CliResult help = await Workspace.RunAsync("help", "decrypt");
        CliResult option = await Workspace.RunAsync("decrypt", "--help");
        Assert.Equal(ExitCodes.Success, help.ExitCode);
        Assert.Equal(option.Stdout, help.Stdout);
        Assert.Contains("Usage:", help.Stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("decrpyt", "decrypt")]
    [InlineData("verfy", "verify")]
    [InlineData("inpsect", "inspect")]
    [InlineData("Encrypt", "encrypt")]
    public async Task A_mistyped_verb_gets_a_did_you_mean(string typed, string verb)
    {
        CliResult result = await Workspace.RunAsync(typed);
        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains($"hint: did you mean 'modelseal {verb}'?", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Required command was not provided", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Something_far_from_every_verb_gets_no_guess()
    {
        CliResult result = await Workspace.RunAsync("frobnicate");
        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.DoesNotContain("did you mean", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("hint: run 'modelseal --help' for usage.", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void The_command_tree_has_the_verbs_the_readme_lists()
    {
        // Guards the theories below: they run for every verb CommandTree finds.
        Assert.True(CommandTree.Verbs().Count >= 19, string.Join(", ", CommandTree.Verbs().Select(v => string.Join(' ', v))));
    }

    [Theory]
    [MemberData(nameof(CommandTree.VerbNames), MemberType = typeof(CommandTree))]
    public async Task Every_verb_has_an_example_in_its_help(string verb)
    {
        CliResult result = await Workspace.RunAsync([.. verb.Split(' '), "--help"]);

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        int examples = result.Stdout.IndexOf("Examples:", StringComparison.Ordinal);
        Assert.True(examples >= 0, result.Stdout);
        Assert.Matches($@"\n +(\S+=\S+ )?modelseal {verb}( |\r?\n)", result.Stdout[examples..]);
    }

    [Theory]
    [MemberData(nameof(CommandTree.VerbNames), MemberType = typeof(CommandTree))]
    public async Task Every_verb_prints_each_default_once(string verb)
    {
        CliResult result = await Workspace.RunAsync([.. verb.Split(' '), "--help"]);

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        foreach (string line in result.Stdout.Split('\n').Where(l => l.TrimStart().StartsWith('-')))
        {
            int defaults = System.Text.RegularExpressions.Regex.Count(line, "default:", System.Text.RegularExpressions.RegexOptions.IgnoreCase);
            Assert.True(defaults <= 1, $"{verb}: the default is printed {defaults} times in: {line.Trim()}");
        }
    }
}
