using System.Text.RegularExpressions;

namespace ModelSeal.Cli.Tests;

/// <summary>The README's CLI reference says what <c>--help</c> says: every verb, each with exactly its options.</summary>
public sealed partial class ReadmeTests
{
    [Fact]
    public void The_cli_reference_lists_every_verb_and_nothing_else()
    {
        HashSet<string> verbs = [.. CommandTree.Verbs().Select(v => string.Join(' ', v))];
        HashSet<string> documented = [.. Reference().Select(row => row.Verb).Where(v => v != "help")];

        Assert.Equal(verbs.Order(StringComparer.Ordinal), documented.Order(StringComparer.Ordinal));
    }

    [Theory]
    [MemberData(nameof(CommandTree.VerbNames), MemberType = typeof(CommandTree))]
    public async Task The_cli_reference_shows_the_options_and_arguments_of_help(string verb)
    {
        CliResult help = await Workspace.RunAsync([.. verb.Split(' '), "--help"]);
        Assert.Equal(ExitCodes.Success, help.ExitCode);
        (string[] options, string[] arguments) = HelpSymbols(help.Stdout);
        string[] synopses = [.. Reference().Where(row => row.Verb == verb).Select(row => row.Synopsis)];
        Assert.NotEmpty(synopses);

        string[] documented = [.. synopses.SelectMany(s => OptionName().Matches(s).Select(m => m.Value)).Distinct().Order(StringComparer.Ordinal)];
        Assert.Equal(options.Order(StringComparer.Ordinal), documented);
        foreach (string argument in arguments)
        {
            // The arguments come right after the verb, in order (MODEL-ID VERSION).
            Assert.All(synopses, s => Assert.Matches($@"modelseal {verb}( [A-Z][A-Z-]*)* {Regex.Escape(argument)}\b", s));
        }
    }

    [Fact]
    public void The_help_parser_reads_options_and_arguments_and_stops_at_the_commands()
    {
        const string Help = """
            Usage:
              modelseal audit [command] [options]

            Arguments:
              <INPUT>  The model.

            Options:
              --after <ID>                  Show records after this id.
              --licence, --license <ID> (REQUIRED)  The licence.
              --json                        Print JSON.
              -?, -h, --help                Show help and usage information

            Commands:
              verify  Verify --expect-records N.
            """;

        (string[] options, string[] arguments) = HelpSymbols(Help);

        Assert.Equal(["--after", "--licence", "--json"], options);
        Assert.Equal(["INPUT"], arguments);
    }

    /// <summary>The primary option names (not aliases, not --help) and the argument names of a --help text.</summary>
    private static (string[] Options, string[] Arguments) HelpSymbols(string help)
    {
        string text = help.ReplaceLineEndings("\n");
        string Section(string title)
        {
            Match match = Regex.Match(text, $@"\n{title}:\n(.*?)(\n\n|\n?$)", RegexOptions.Singleline);
            return match.Success ? match.Groups[1].Value : string.Empty;
        }

        string[] options = [.. HelpOption().Matches(Section("Options")).Select(m => m.Groups[1].Value).Where(name => name.StartsWith("--", StringComparison.Ordinal) && name != "--help")];
        string[] arguments = [.. HelpArgument().Matches(Section("Arguments")).Select(m => m.Groups[1].Value)];
        return (options, arguments);
    }

    /// <summary>The rows of the README's CLI reference table: the verb each synopsis is for, and the synopsis.</summary>
    private static IEnumerable<(string Verb, string Synopsis)> Reference()
    {
        string readme = File.ReadAllText(Path.Combine(RepoPaths.Root, "README.md")).ReplaceLineEndings("\n");
        int start = readme.IndexOf("\n## CLI reference\n", StringComparison.Ordinal);
        Assert.True(start >= 0, "README.md has no '## CLI reference' section");
        string section = readme[start..];
        section = section[..section.IndexOf("\n\n", section.IndexOf("| command |", StringComparison.Ordinal), StringComparison.Ordinal)];
        HashSet<string> verbs = [.. CommandTree.Verbs().Select(v => string.Join(' ', v)), "help"];
        foreach (Match row in ReferenceRow().Matches(section))
        {
            string synopsis = row.Groups[1].Value.Replace("\\|", "|", StringComparison.Ordinal);
            string? verb = verbs.Where(v => synopsis == "modelseal " + v || synopsis.StartsWith("modelseal " + v + " ", StringComparison.Ordinal)).MaxBy(v => v.Length);
            Assert.True(verb is not null, $"the README's CLI reference names no verb of modelseal: {synopsis}");
            yield return (verb, synopsis);
        }
    }

    [GeneratedRegex(@"^\| `(modelseal[^`]*)` \|", RegexOptions.Multiline)]
    private static partial Regex ReferenceRow();

    [GeneratedRegex(@"--[a-z0-9][a-z0-9-]*")]
    private static partial Regex OptionName();

    [GeneratedRegex(@"^  (--?[^\s,]+)", RegexOptions.Multiline)]
    private static partial Regex HelpOption();

    [GeneratedRegex(@"^  <([^>]+)>", RegexOptions.Multiline)]
    private static partial Regex HelpArgument();
}
