using System.Text;

namespace ModelSeal.Server.Text;

/// <summary>The spelling of problem and audit codes: an enum member's name in kebab case.</summary>
internal static class KebabCase
{
    /// <summary><c>LicenceRevoked</c> → <c>licence-revoked</c>.</summary>
    public static string Of(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var code = new StringBuilder(name.Length + 4);
        foreach (char c in name)
        {
            if (char.IsAsciiLetterUpper(c) && code.Length > 0)
            {
                code.Append('-');
            }

            code.Append(char.ToLowerInvariant(c));
        }

        return code.ToString();
    }
}
