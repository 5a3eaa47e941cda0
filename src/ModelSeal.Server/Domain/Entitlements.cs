using Microsoft.Extensions.Logging;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Diagnostics;

namespace ModelSeal.Server.Domain;

/// <summary>
/// Which entitlement rule decides for a caller (docs/protocol.md section 2.5): the first, in the configured order, whose
/// conditions all hold. It decides whether or not it covers the model asked for: later rules are not tried.
/// </summary>
internal static class Entitlements
{
    /// <summary>The first rule that matches <paramref name="caller"/> at <paramref name="now"/>, or null.</summary>
    public static EntitlementRule? Match(IReadOnlyList<EntitlementRule> rules, Caller caller, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(rules);
        ArgumentNullException.ThrowIfNull(caller);
        foreach (EntitlementRule rule in rules)
        {
            if (Matches(rule, caller, now))
            {
                return rule;
            }
        }

        return null;
    }

    /// <summary>
    /// True when every condition of <paramref name="rule"/> holds: the caller is a trusted external issuer's (never the
    /// server's own tokens), the issuer is the rule's, <c>sub</c> is listed (when subjects are), every scope is granted,
    /// one of the groups is in the groups claim (when groups are), each claim is that one string, and the rule has not
    /// ended (<c>NotAfter</c>). A claim of another type than a string never matches.
    /// </summary>
    public static bool Matches(EntitlementRule rule, Caller caller, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(rule);
        ArgumentNullException.ThrowIfNull(caller);
        if (caller.OwnIssuer || !string.Equals(rule.Issuer, caller.Issuer, StringComparison.Ordinal) || (rule.NotAfter is { } end && now >= end))
        {
            return false;
        }

        if (rule.Subjects.Count > 0 && !rule.Subjects.Contains(caller.Subject))
        {
            return false;
        }

        ClaimSet claims = caller.Claims ?? ClaimSet.Empty;
        foreach (string scope in rule.Scopes)
        {
            if (!claims.HasScope(scope))
            {
                return false;
            }
        }

        if (rule.Groups.Count > 0 && !claims.Strings(rule.GroupsClaim).Any(rule.Groups.Contains))
        {
            return false;
        }

        foreach ((string name, string value) in rule.Claims)
        {
            if (!string.Equals(claims.SingleString(name), value, StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }
}

/// <summary>The outcome of loading the rules: how many, or why the new file was refused (the old rules stay).</summary>
internal sealed record RuleLoad(int Rules, string? Error);

/// <summary>
/// The entitlement rules in force. Inline rules (<c>Entitlements:Rules</c>) are fixed; a rule file
/// (<c>Entitlements:File</c>) is watched and read again whenever it changes: a valid file replaces the rules at once,
/// a bad one (a malformed rule, or a rule for an issuer that is not one of the TrustedIssuers) is refused (logged, <see cref="ServerLog.EntitlementRulesRefused"/>) and the rules in force stay.
/// </summary>
internal sealed class EntitlementRuleSet : IDisposable
{
    private readonly Lock _reload = new();
    private readonly string? _file;
    private readonly IReadOnlyList<TrustedIssuerOptions> _trustedIssuers;
    private readonly IReadOnlyList<string> _attestationPolicies;
    private readonly ILogger _logger;
    private readonly FileSystemWatcher? _watcher;
    private volatile IReadOnlyList<EntitlementRule> _rules;
    private TaskCompletionSource<RuleLoad> _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <param name="options">The validated options.</param>
    /// <param name="logger">Where reloads are logged.</param>
    /// <exception cref="ServerConfigurationException">The rule file cannot be read or holds a bad rule.</exception>
    public EntitlementRuleSet(ServerOptions options, ILogger<EntitlementRuleSet> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _logger = logger;
        _trustedIssuers = [.. options.TrustedIssuers];
        _attestationPolicies = [.. options.Attestation.Policies.Keys];
        _file = options.Entitlements.File is { } file ? Path.GetFullPath(file) : null;
        if (_file is null)
        {
            _rules = EntitlementRules.Parse(options.Entitlements.Rules, "Entitlements:Rules", options.TrustedIssuers, _attestationPolicies);
            return;
        }

        // Watch first, then read: a change between the two is read again, never missed.
        _watcher = new FileSystemWatcher(Path.GetDirectoryName(_file)!, Path.GetFileName(_file))
        {
            NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.CreationTime,
        };
        _watcher.Changed += (_, _) => Reload();
        _watcher.Created += (_, _) => Reload();
        _watcher.Renamed += (_, _) => Reload();
        _watcher.EnableRaisingEvents = true;
        _rules = Read(_file);
        ServerLog.EntitlementRulesLoaded(_logger, _rules.Count, _file);
    }

    /// <summary>The rules in force, in order.</summary>
    public IReadOnlyList<EntitlementRule> Rules => _rules;

    /// <summary>The rule file, or null when the rules are inline.</summary>
    public string? File => _file;

    /// <summary>Completes at the next reload of the rule file (whether it replaced the rules or was refused).</summary>
    public Task<RuleLoad> NextReloadAsync()
    {
        lock (_reload)
        {
            return _next.Task;
        }
    }

    /// <summary>Reads the rule file again now (also what a change of the file does).</summary>
    public RuleLoad Reload()
    {
        if (_file is null)
        {
            return new RuleLoad(_rules.Count, null);
        }

        RuleLoad outcome;
        TaskCompletionSource<RuleLoad> done;
        lock (_reload)
        {
            try
            {
                _rules = Read(_file);
                outcome = new RuleLoad(_rules.Count, null);
                ServerLog.EntitlementRulesLoaded(_logger, _rules.Count, _file);
            }
            catch (ServerConfigurationException e)
            {
                outcome = new RuleLoad(_rules.Count, e.Message);
                ServerLog.EntitlementRulesRefused(_logger, _file, e.Message, _rules.Count);
            }

            done = _next;
            _next = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        done.TrySetResult(outcome);
        return outcome;
    }

    public void Dispose() => _watcher?.Dispose();

    /// <summary>The rules of <paramref name="file"/>, validated as at start: well formed, each for a trusted issuer.</summary>
    private IReadOnlyList<EntitlementRule> Read(string file) =>
        EntitlementRules.Parse(ServerConfiguration.LoadRuleFile(file), $"'{file}' Rules", _trustedIssuers, _attestationPolicies);
}
