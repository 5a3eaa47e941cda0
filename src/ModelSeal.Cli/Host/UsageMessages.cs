using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text.RegularExpressions;

namespace ModelSeal.Cli.Host;

/// <summary>Usage errors in the user's terms: whole command paths, and expected formats instead of .NET type names.</summary>
internal static partial class UsageMessages
{
    /// <summary>"modelseal licence add": the command as typed, from the root (aliases by their main name).</summary>
    public static string CommandPath(CommandResult command)
    {
        var names = new Stack<string>();
        for (SymbolResult? result = command; result is CommandResult c; result = c.Parent)
        {
            names.Push(c.Command is RootCommand ? "modelseal" : c.Command.Name);
        }

        return string.Join(' ', names);
    }

    /// <summary>"modelseal audit verify": the verbs at the start of <paramref name="args"/>, by their main names.</summary>
    public static string CommandPath(RootCommand root, IEnumerable<string> args)
    {
        var names = new List<string> { "modelseal" };
        Command command = root;
        foreach (string arg in args)
        {
            if (command.Subcommands.FirstOrDefault(c => c.Name == arg || c.Aliases.Contains(arg)) is not { } sub)
            {
                break;
            }

            names.Add(sub.Name);
            command = sub;
        }

        return string.Join(' ', names);
    }

    /// <summary>System.CommandLine's "Cannot parse argument … as expected type 'System.Int32'" said with the format expected; other messages unchanged.</summary>
    public static string Rephrase(string message)
    {
        Match match = CannotParse().Match(message);
        return match.Success
            ? $"{match.Groups["name"].Value} '{match.Groups["value"].Value}' is not {Expected(match.Groups["type"].Value)}."
            : message;
    }

    private static string Expected(string type) => type.Replace("System.Nullable`1[", string.Empty, StringComparison.Ordinal).TrimEnd(']') switch
    {
        "System.Int32" or "System.Int64" => "a whole number",
        "System.DateTimeOffset" or "System.DateTime" => "a time: " + Times.Format,
        "System.Boolean" => "true or false",
        _ => "a valid value",
    };

    [GeneratedRegex(@"^Cannot parse argument '(?<value>.*)' for (?:option|argument|command) '(?<name>.*)' as expected type '(?<type>.*)'\.$", RegexOptions.Singleline)]
    private static partial Regex CannotParse();
}
