using System.CommandLine;
using System.CommandLine.Parsing;

namespace ModelSeal.Cli.Commands;

/// <summary>Factories and validators for the options the verbs share.</summary>
internal static class VerbOptions
{
    public static Argument<string> Input(string description) => NotEmpty(new Argument<string>("INPUT") { Description = description });

    public static Option<string> Key(bool required = true) => NotEmpty(new Option<string>("--key")
    {
        Required = required,
        HelpName = "FILE",
        Description = "The key file (from 'modelseal keygen'); must be owner-only.",
    });

    public static Option<string> Out(string description) => NotEmpty(new Option<string>("--out")
    {
        Required = true,
        HelpName = "FILE",
        Description = description,
    });

    public static Option<bool> Force() => new("--force") { Description = "Replace the output file if it exists." };

    public static Option<bool> Json() => new("--json") { Description = "Print the result as one JSON object on standard output." };

    /// <summary>A time option (<see cref="Times"/>): RFC 3339 with an offset, or a date.</summary>
    public static Option<DateTimeOffset?> Time(string name, string description) => new(name)
    {
        HelpName = "TIME",
        Description = description,
        CustomParser = result =>
        {
            string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : string.Empty;
            if (Times.TryParse(text, out DateTimeOffset time))
            {
                return time;
            }

            result.AddError($"{name} '{text}' is not a time: give {Times.Format}.");
            return null;
        },
    };

    /// <summary>An option whose value must be a valid identifier (<see cref="Identifier"/>).</summary>
    public static Option<string> Identifier(string name, string what, int maxLength, string helpName, string description, bool required)
    {
        var option = new Option<string>(name) { Required = required, HelpName = helpName, Description = description };
        option.Validators.Add(result =>
        {
            string? value = result.GetValueOrDefault<string?>();
            if (value is not null && !ModelSeal.Identifier.IsValid(value, maxLength))
            {
                result.AddError(
                    $"{name} '{value}' is not a valid {what}: it must be 1 to {maxLength} ASCII characters, start with a letter or digit, and contain only letters, digits, '.', '_' and '-'.");
            }
        });
        return option;
    }

    private static Option<string> NotEmpty(Option<string> option)
    {
        option.Validators.Add(result =>
        {
            if (string.IsNullOrEmpty(result.GetValueOrDefault<string?>()))
            {
                result.AddError($"{option.Name} must not be empty.");
            }
        });
        return option;
    }

    private static Argument<string> NotEmpty(Argument<string> argument)
    {
        argument.Validators.Add(result =>
        {
            if (string.IsNullOrEmpty(result.GetValueOrDefault<string?>()))
            {
                result.AddError($"{argument.Name} must not be empty.");
            }
        });
        return argument;
    }
}
