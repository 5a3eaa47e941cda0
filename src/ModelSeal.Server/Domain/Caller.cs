namespace ModelSeal.Server.Domain;

/// <summary>
/// Who asks, from a validated token: its issuer and subject; for the server's own tokens (<paramref name="OwnIssuer"/>)
/// the licence its <c>lic</c> claim names; the client address for the audit record; and, for a trusted external
/// issuer's token, its claims (<paramref name="Claims"/>), which entitlement rules match on.
/// </summary>
internal sealed record Caller(string Issuer, string Subject, bool OwnIssuer, string? LicenceId, string? Client, ClaimSet? Claims = null);

/// <summary>
/// A validated token's claims as entitlement rules see them: per claim name its values in order, a JSON string as
/// itself and any other value (a number, a boolean, an object, a nested array) as null, so that it matches nothing.
/// A JSON array of values is the claim's several values.
/// </summary>
internal sealed class ClaimSet
{
    private readonly Dictionary<string, List<string?>> _claims = new(StringComparer.Ordinal);

    /// <summary>No claims.</summary>
    public static ClaimSet Empty { get; } = new([]);

    /// <param name="claims">Each claim value: its name, its text and whether it was a JSON string.</param>
    public ClaimSet(IEnumerable<(string Name, string Value, bool IsString)> claims)
    {
        ArgumentNullException.ThrowIfNull(claims);
        foreach ((string name, string value, bool isString) in claims)
        {
            if (!_claims.TryGetValue(name, out List<string?>? values))
            {
                _claims[name] = values = [];
            }

            values.Add(isString ? value : null);
        }
    }

    /// <summary>The claim's value when it is exactly one string; null otherwise (absent, several values, not a string).</summary>
    public string? SingleString(string name) =>
        _claims.TryGetValue(name, out List<string?>? values) && values.Count == 1 ? values[0] : null;

    /// <summary>The claim's string values (values of other types left out).</summary>
    public IEnumerable<string> Strings(string name) =>
        _claims.TryGetValue(name, out List<string?>? values) ? values.OfType<string>() : [];

    /// <summary>
    /// True when the token grants <paramref name="scope"/>: in its <c>scope</c> claim (space-separated, RFC 9068) or its
    /// <c>scp</c> claim (a space-separated string or a list, as Entra ID and Okta write it).
    /// </summary>
    public bool HasScope(string scope)
    {
        foreach (string name in (ReadOnlySpan<string>)["scope", "scp"])
        {
            foreach (string value in Strings(name))
            {
                foreach (string granted in value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                {
                    if (string.Equals(granted, scope, StringComparison.Ordinal))
                    {
                        return true;
                    }
                }
            }
        }

        return false;
    }
}
