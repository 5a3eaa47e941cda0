namespace ModelSeal;

/// <summary>The identifier syntax of model ids, model versions and key ids (docs/format.md, section 1.1).</summary>
internal static class Identifier
{
    /// <summary>Maximum length in bytes of a model id or key id.</summary>
    public const int MaxIdLength = 128;

    /// <summary>Maximum length in bytes of a model version.</summary>
    public const int MaxVersionLength = 64;

    /// <summary>True when <paramref name="value"/> is a valid identifier of at most <paramref name="maxLength"/> bytes.</summary>
    public static bool IsValid(ReadOnlySpan<char> value, int maxLength)
    {
        if (value.IsEmpty || value.Length > maxLength || !char.IsAsciiLetterOrDigit(value[0]))
        {
            return false;
        }

        foreach (char c in value)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '.' && c != '_' && c != '-')
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming <paramref name="what"/> unless the value is valid.</summary>
    public static string Validate(string? value, string what, int maxLength, string paramName)
    {
        ArgumentNullException.ThrowIfNull(value, paramName);
        if (!IsValid(value, maxLength))
        {
            string problem = Describe(what, maxLength, value);
            throw new ArgumentException(char.ToUpperInvariant(problem[0]) + problem[1..] + ".", paramName);
        }

        return value;
    }

    internal static string Describe(string what, int maxLength, string actual) =>
        $"the {what} must be 1 to {maxLength} ASCII characters, starting with a letter or digit and containing only letters, digits, '.', '_' and '-'; got {Quote(actual)}";

    /// <summary>Quotes an untrusted string for an error message: printable ASCII only, at most 80 characters.</summary>
    internal static string Quote(string value)
    {
        var text = new System.Text.StringBuilder(value.Length + 2).Append('\'');
        foreach (char c in value.Length > 80 ? value[..80] : value)
        {
            text.Append(c is >= ' ' and <= '~' ? c : '?');
        }

        text.Append('\'');
        return value.Length > 80 ? text.Append("... (").Append(value.Length).Append(" characters)").ToString() : text.ToString();
    }
}
