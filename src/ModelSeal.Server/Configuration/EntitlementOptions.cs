using System.Globalization;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Configuration;

/// <summary>
/// Entitlement rules (docs/deploy.md "Entitlement rules"), bound from the <c>Entitlements</c> section: which models a
/// trusted external issuer's users may open, on how many devices, for how long — decided from the validated token's
/// claims. Either <see cref="Rules"/> (fixed until a restart) or <see cref="File"/> (reloaded when it changes), not both.
/// </summary>
public sealed class EntitlementOptions
{
    /// <summary>
    /// A JSON file <c>{"Rules": [ … ]}</c> with the rules (<c>Entitlements:File</c>). It is read at start (a bad file
    /// refuses the start) and again whenever it changes; a bad new file keeps the rules in force and logs an error.
    /// </summary>
    public string? File { get; set; }

    /// <summary>The rules, in order: the first whose conditions match a token decides (<c>Entitlements:Rules</c>, a list).</summary>
    public IList<EntitlementRuleOptions> Rules { get; set; } = [];

    internal EntitlementOptions Copy()
    {
        var copy = (EntitlementOptions)MemberwiseClone();
        copy.Rules = Rules is null ? null! : Rules.Select(r => r?.Copy()!).ToList();
        return copy;
    }
}

/// <summary>The shape of an entitlement rule file (<see cref="EntitlementOptions.File"/>): <c>{"Rules": [ … ]}</c>.</summary>
public sealed class EntitlementRuleFile
{
    /// <summary>The rules, in order.</summary>
    public IList<EntitlementRuleOptions> Rules { get; set; } = [];
}

/// <summary>
/// One entitlement rule as configured: its name, the conditions a validated token must meet (all that are given), and
/// what it grants. See <see cref="EntitlementRule"/> for the validated form.
/// </summary>
public sealed class EntitlementRuleOptions
{
    /// <summary>The rule's name, recorded in the audit log (<c>rule</c>); unique, 1 to 64 of <c>A–Z a–z 0–9 . - _</c>.</summary>
    public string? Name { get; set; }

    /// <summary>The token's <c>iss</c>, exactly (required): the rule applies to one trusted issuer's tokens only.</summary>
    public string? Issuer { get; set; }

    /// <summary>When not empty, the token's <c>sub</c> must be one of these (exactly).</summary>
    public IList<string> Subjects { get; set; } = [];

    /// <summary>When not empty, the token must carry every one of these scopes (<c>scope</c> or <c>scp</c>).</summary>
    public IList<string> Scopes { get; set; } = [];

    /// <summary>When not empty, the token's <see cref="GroupsClaim"/> must hold at least one of these.</summary>
    public IList<string> Groups { get; set; } = [];

    /// <summary>The claim that lists the user's groups or roles (default <c>groups</c>; <c>roles</c> for Entra ID, say).</summary>
    public string GroupsClaim { get; set; } = "groups";

    /// <summary>Claims that must be strings equal to these values (<c>"plan": "pro"</c>, <c>"tenant": "acme"</c>).</summary>
    public IDictionary<string, string> Claims { get; set; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>The models granted (required): ids, prefixes ending in <c>*</c> (<c>acme-*</c>), or <c>*</c> for all.</summary>
    public IList<string> Models { get; set; } = [];

    /// <summary>The devices each user may use (default 1, at most 1 000 000).</summary>
    public int MaxDevices { get; set; } = 1;

    /// <summary>How long a released key may be used offline (default: the server's <c>LeaseDuration</c>).</summary>
    public TimeSpan? LeaseDuration { get; set; }

    /// <summary>When the rule ends (RFC 3339 with an offset, or a date for midnight UTC); after it the rule matches no one.</summary>
    public string? NotAfter { get; set; }

    /// <summary>
    /// The name of an attestation policy (<c>Attestation:Policies</c>) a device key must satisfy before it gets a key
    /// under this rule (docs/protocol.md section 2.6); null: none.
    /// </summary>
    public string? AttestationPolicy { get; set; }

    internal EntitlementRuleOptions Copy()
    {
        var copy = (EntitlementRuleOptions)MemberwiseClone();
        copy.Subjects = Subjects is null ? null! : [.. Subjects];
        copy.Scopes = Scopes is null ? null! : [.. Scopes];
        copy.Groups = Groups is null ? null! : [.. Groups];
        copy.Models = Models is null ? null! : [.. Models];
        copy.Claims = Claims is null ? null! : new Dictionary<string, string>(Claims, StringComparer.Ordinal);
        return copy;
    }
}

/// <summary>
/// A validated entitlement rule (<see cref="EntitlementRules.Parse"/>): immutable, every list non-null. The decision
/// that uses it lives in the domain (Domain.Entitlements).
/// </summary>
internal sealed record EntitlementRule(
    string Name,
    string Issuer,
    IReadOnlySet<string> Subjects,
    IReadOnlyList<string> Scopes,
    IReadOnlySet<string> Groups,
    string GroupsClaim,
    IReadOnlyList<KeyValuePair<string, string>> Claims,
    IReadOnlyList<string> Models,
    int MaxDevices,
    TimeSpan? LeaseDuration,
    DateTimeOffset? NotAfter,
    string? AttestationPolicy = null)
{
    /// <summary>True when the rule grants <paramref name="modelId"/>: an id, a prefix ending in <c>*</c>, or <c>*</c>.</summary>
    public bool Covers(string modelId)
    {
        foreach (string model in Models)
        {
            if (model.EndsWith('*') ? modelId.StartsWith(model[..^1], StringComparison.Ordinal) : string.Equals(model, modelId, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>Validates configured rules into <see cref="EntitlementRule"/>s; every refusal names the key and the fix.</summary>
internal static class EntitlementRules
{
    public const int MaxRules = 10_000;
    public const int MaxDevicesLimit = 1_000_000;

    /// <summary>
    /// Validates <paramref name="rules"/>; <paramref name="prefix"/> is the configuration path of the list
    /// (<c>Entitlements:Rules</c>, or the file). Each rule's <c>Issuer</c> must be one of <paramref name="trustedIssuers"/>
    /// (the configured <c>TrustedIssuers</c>): a rule for an issuer whose tokens the server never accepts would grant
    /// nothing, silently. Each rule's <c>AttestationPolicy</c>, when given, must be one of <paramref name="attestationPolicies"/>.
    /// </summary>
    /// <exception cref="ServerConfigurationException">A rule is malformed or names an issuer that is not trusted or an unknown policy.</exception>
    public static IReadOnlyList<EntitlementRule> Parse(IList<EntitlementRuleOptions>? rules, string prefix, IEnumerable<TrustedIssuerOptions?>? trustedIssuers, IEnumerable<string>? attestationPolicies)
    {
        List<EntitlementRule> parsed = ParseWellFormed(rules, prefix);
        HashSet<string> trusted = [.. (trustedIssuers ?? []).Select(t => t?.Issuer).OfType<string>()];
        HashSet<string> policies = new(attestationPolicies ?? [], StringComparer.Ordinal);
        for (int i = 0; i < parsed.Count; i++)
        {
            if (parsed[i].AttestationPolicy is { } policy && !policies.Contains(policy))
            {
                string key = string.Create(CultureInfo.InvariantCulture, $"{prefix}:{i}:AttestationPolicy");
                throw new ServerConfigurationException(policies.Count == 0
                    ? $"{key} is '{policy}', but Attestation:Policies is empty. Configure the policy under Attestation:Policies (docs/deploy.md), or remove the setting."
                    : $"{key} is '{policy}', which is not one of Attestation:Policies ({string.Join(", ", policies.Order(StringComparer.Ordinal).Select(p => "'" + p + "'"))}). Name a configured policy, or configure it.");
            }

            if (!trusted.Contains(parsed[i].Issuer))
            {
                string key = string.Create(CultureInfo.InvariantCulture, $"{prefix}:{i}:Issuer");
                throw new ServerConfigurationException(trusted.Count == 0
                    ? $"{key} is '{parsed[i].Issuer}', but TrustedIssuers is empty, so no token of that issuer is ever accepted and the rule would grant nothing. Add the issuer to TrustedIssuers (its Issuer and its Authority or JwksFile), or remove the rule."
                    : $"{key} is '{parsed[i].Issuer}', which is not one of the TrustedIssuers ({string.Join(", ", trusted.Order(StringComparer.Ordinal).Select(t => "'" + t + "'"))}), so the rule would grant nothing. Give the exact 'iss' of a trusted issuer, or add the issuer to TrustedIssuers (its Issuer and its Authority or JwksFile).");
            }
        }

        return parsed;
    }

    /// <summary>Every rule checked on its own, then the names for uniqueness (the issuers are checked after: a malformed rule is the first thing to fix).</summary>
    private static List<EntitlementRule> ParseWellFormed(IList<EntitlementRuleOptions>? rules, string prefix)
    {
        if (rules is null)
        {
            throw new ServerConfigurationException($"{prefix} must be a list of rules (it is null).");
        }

        if (rules.Count > MaxRules)
        {
            throw new ServerConfigurationException(string.Create(CultureInfo.InvariantCulture, $"{prefix} has {rules.Count} rules; at most {MaxRules} are allowed. Group users by claims (a plan, a tenant, a group) rather than one rule each."));
        }

        var parsed = new List<EntitlementRule>(rules.Count);
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < rules.Count; i++)
        {
            string key = string.Create(CultureInfo.InvariantCulture, $"{prefix}:{i}");
            EntitlementRule rule = ParseOne(rules[i] ?? throw new ServerConfigurationException($"{key} is empty; give the rule a Name, an Issuer and Models."), key);
            if (!names.Add(rule.Name))
            {
                throw new ServerConfigurationException($"{key}:Name '{rule.Name}' is used by an earlier rule; rule names are unique (the audit log records them).");
            }

            parsed.Add(rule);
        }

        return parsed;
    }

    private static EntitlementRule ParseOne(EntitlementRuleOptions rule, string key)
    {
        if (string.IsNullOrEmpty(rule.Name) || rule.Name.Length > 64 || !rule.Name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_'))
        {
            throw new ServerConfigurationException($"{key}:Name is required: 1 to 64 of A-Z a-z 0-9 . - _ (e.g. \"pro-users\"); the audit log records it.");
        }

        if (string.IsNullOrWhiteSpace(rule.Issuer))
        {
            throw new ServerConfigurationException($"{key}:Issuer is required: the exact 'iss' of a trusted issuer (TrustedIssuers) whose users the rule covers.");
        }

        if (rule.Models is null || rule.Models.Count == 0)
        {
            throw new ServerConfigurationException($"{key}:Models names no models; list the model ids, prefixes ending in * (\"acme-*\"), or \"*\" for all (a rule that grants nothing would only hide the rules after it).");
        }

        for (int m = 0; m < rule.Models.Count; m++)
        {
            string? model = rule.Models[m];
            if (string.IsNullOrWhiteSpace(model) || model.Length > 129 || model.IndexOf('*', StringComparison.Ordinal) is int star && star >= 0 && star != model.Length - 1)
            {
                throw new ServerConfigurationException(string.Create(CultureInfo.InvariantCulture, $"{key}:Models:{m} must be a model id, a prefix ending in * (\"acme-*\") or \"*\"; a * may only end it."));
            }
        }

        if (rule.MaxDevices is < 1 or > MaxDevicesLimit)
        {
            throw new ServerConfigurationException(string.Create(CultureInfo.InvariantCulture, $"{key}:MaxDevices must be from 1 to {MaxDevicesLimit} (the devices each user may use), e.g. 3."));
        }

        if (rule.LeaseDuration is { } lease && (lease <= TimeSpan.Zero || lease > TimeSpan.FromDays(366)))
        {
            throw new ServerConfigurationException($"{key}:LeaseDuration must be positive and at most 366 days, e.g. 7.00:00:00 (or left out for the server's LeaseDuration).");
        }

        DateTimeOffset? notAfter = null;
        if (rule.NotAfter is not null)
        {
            DateTimeOffset end;
            if (DateOnly.TryParseExact(rule.NotAfter, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out DateOnly day))
            {
                end = new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
            }
            else if (!Rfc3339.TryParse(rule.NotAfter, out end))
            {
                throw new ServerConfigurationException($"{key}:NotAfter must be an RFC 3339 time with an offset (2027-01-31T23:59:59Z) or a date (2027-01-31, midnight UTC).");
            }

            notAfter = end;
        }

        if (string.IsNullOrWhiteSpace(rule.GroupsClaim))
        {
            throw new ServerConfigurationException($"{key}:GroupsClaim must name a claim (default \"groups\"; \"roles\" for Entra ID app roles).");
        }

        RequireValues(rule.Subjects, key + ":Subjects");
        RequireValues(rule.Scopes, key + ":Scopes");
        RequireValues(rule.Groups, key + ":Groups");
        if (rule.Scopes!.Any(s => s.Contains(' ', StringComparison.Ordinal)))
        {
            throw new ServerConfigurationException($"{key}:Scopes lists one scope per item (no spaces).");
        }

        var claims = new List<KeyValuePair<string, string>>();
        foreach ((string name, string value) in rule.Claims ?? new Dictionary<string, string>())
        {
            if (string.IsNullOrEmpty(name) || value is null)
            {
                throw new ServerConfigurationException($"{key}:Claims:{name} must be a claim name with a string value, e.g. \"plan\": \"pro\".");
            }

            claims.Add(new(name, value));
        }

        return new EntitlementRule(
            rule.Name,
            rule.Issuer,
            new HashSet<string>(rule.Subjects!, StringComparer.Ordinal),
            [.. rule.Scopes!],
            new HashSet<string>(rule.Groups!, StringComparer.Ordinal),
            rule.GroupsClaim,
            claims,
            [.. rule.Models],
            rule.MaxDevices,
            rule.LeaseDuration,
            notAfter,
            string.IsNullOrEmpty(rule.AttestationPolicy) ? null : rule.AttestationPolicy);
    }

    private static void RequireValues(IList<string>? values, string key)
    {
        if (values is null)
        {
            throw new ServerConfigurationException($"{key} must be a list (or left out).");
        }

        if (values.Any(string.IsNullOrEmpty))
        {
            throw new ServerConfigurationException($"{key} has an empty item; remove it.");
        }
    }
}
