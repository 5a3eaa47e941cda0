using System.Collections;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using Microsoft.Extensions.Configuration;

namespace ModelSeal.Server.Configuration;

/// <summary>
/// Loads <see cref="ServerOptions"/> from configuration (docs/deploy.md "Configuration reference"), in increasing
/// precedence: the defaults of <see cref="ServerOptions"/>, then the defaults given to <see cref="Load"/> (the CLI's),
/// a JSON file, <c>MODELSEAL_</c> environment variables and the overrides (the command
/// line). Keys are the property paths of <see cref="ServerOptions"/> (<c>Database:Provider</c>,
/// <c>TrustedIssuers:0:Audiences:0</c>), case-insensitive; in the environment <c>:</c> is written <c>__</c>.
/// Loading only reads and types the values; <see cref="ServerHost.Build"/> validates them.
/// </summary>
public static class ServerConfiguration
{
    /// <summary>The prefix of the environment variables that set configuration keys.</summary>
    public const string EnvironmentPrefix = "MODELSEAL_";

    private const DynamicallyAccessedMemberTypes Properties = DynamicallyAccessedMemberTypes.PublicProperties;

    /// <summary>Reads the configuration.</summary>
    /// <param name="file">A JSON configuration file, or null for none.</param>
    /// <param name="environment">
    /// Environment variables (<see cref="Environment.GetEnvironmentVariables()"/>). Only <c>MODELSEAL_</c> variables
    /// whose first segment names a setting are read (<c>MODELSEAL_Urls</c>, <c>MODELSEAL_Database__Provider</c>); the
    /// others that share the prefix (<c>MODELSEAL_SERVER</c> of the client verbs, say) are ignored.
    /// </param>
    /// <param name="defaults">Values below the file (configuration keys to values), e.g. the CLI's data directory.</param>
    /// <param name="overrides">Values above the environment (configuration keys to values): the command-line flags.</param>
    /// <returns>The options, not yet validated; <see cref="ServerOptions.DataDirectory"/> is empty when nothing set it.</returns>
    /// <exception cref="ServerConfigurationException">
    /// The file is missing, unreadable or not JSON; a key is unknown; a value has the wrong type or shape. The message
    /// names the file or the key, never the value.
    /// </exception>
    public static ServerOptions Load(
        string? file,
        IDictionary environment,
        IEnumerable<KeyValuePair<string, string?>>? defaults = null,
        IEnumerable<KeyValuePair<string, string?>>? overrides = null)
    {
        ArgumentNullException.ThrowIfNull(environment);
        var builder = new ConfigurationBuilder();
        builder.AddInMemoryCollection(defaults ?? []);
        if (file is not null)
        {
            builder.AddJsonStream(new MemoryStream(ReadFile(file)));
        }

        builder.AddInMemoryCollection(EnvironmentKeys(environment));
        builder.AddInMemoryCollection(overrides ?? []);

        IConfigurationRoot configuration;
        try
        {
            configuration = builder.Build();
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidDataException)
        {
            throw new ServerConfigurationException($"The configuration file '{file}' is not a JSON object of settings: {e.Message} Fix the file (docs/deploy.md has an example).", e);
        }

        CheckSection<ServerOptions>(configuration);

        var options = new ServerOptions { DataDirectory = string.Empty };
        try
        {
            configuration.Bind(options, binder => binder.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            // CheckSection refuses unknown keys and mistyped values first, naming the key; this is a backstop.
            throw new ServerConfigurationException($"The configuration could not be applied: {e.Message}", e);
        }

        return options;
    }

    /// <summary>
    /// Reads an entitlement rule file (<see cref="EntitlementOptions.File"/>): a JSON object <c>{"Rules": [ … ]}</c> whose
    /// keys are checked as the configuration's are (an unknown key or a mistyped value is refused, naming the key).
    /// The rules are not validated here (<see cref="EntitlementRules.Parse"/>).
    /// </summary>
    /// <exception cref="ServerConfigurationException">The file is unreadable, not JSON, or has an unknown or mistyped key.</exception>
    internal static IList<EntitlementRuleOptions> LoadRuleFile(string file)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ServerConfigurationException($"The entitlement rule file '{file}' (Entitlements:File) could not be read ({e.GetType().Name}); give the path of a readable JSON file.", e);
        }

        IConfigurationRoot configuration;
        try
        {
            configuration = new ConfigurationBuilder().AddJsonStream(new MemoryStream(bytes)).Build();
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidDataException)
        {
            throw new ServerConfigurationException($"The entitlement rule file '{file}' is not a JSON object {{\"Rules\": [ … ]}}: {e.Message} Fix the file (docs/deploy.md \"Entitlement rules\").", e);
        }

        try
        {
            CheckSection<EntitlementRuleFile>(configuration);
        }
        catch (ServerConfigurationException e)
        {
            throw new ServerConfigurationException($"The entitlement rule file '{file}': {e.Message}", e);
        }

        var rules = new EntitlementRuleFile();
        try
        {
            configuration.Bind(rules, binder => binder.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            throw new ServerConfigurationException($"The entitlement rule file '{file}' could not be applied: {e.Message}", e);
        }

        return rules.Rules;
    }

    /// <summary>The configuration keys of <c>MODELSEAL_</c> variables that name a setting (see <see cref="Load"/>).</summary>
    internal static Dictionary<string, string?> EnvironmentKeys(IDictionary environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        var keys = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry entry in environment)
        {
            if (entry.Key is not string name || !name.StartsWith(EnvironmentPrefix, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            string key = name[EnvironmentPrefix.Length..].Replace("__", ConfigurationPath.KeyDelimiter, StringComparison.Ordinal);
            string first = key.Split(ConfigurationPath.KeyDelimiter)[0];
            if (typeof(ServerOptions).GetProperty(first, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase) is not null)
            {
                keys[key] = entry.Value as string;
            }
        }

        return keys;
    }

    private static byte[] ReadFile(string file)
    {
        try
        {
            return File.ReadAllBytes(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            string reason = e switch
            {
                FileNotFoundException or DirectoryNotFoundException => "does not exist",
                UnauthorizedAccessException => "is not readable by this user",
                _ => "could not be read",
            };
            throw new ServerConfigurationException($"The configuration file '{file}' {reason} ({e.GetType().Name}); give the path of a readable JSON file to --config.", e);
        }
    }

    /// <summary>
    /// Refuses a key <typeparamref name="T"/> has no setting for, a value where a section or list is expected (and the
    /// reverse), and a value that is not of the setting's type, naming the key and never the value.
    /// </summary>
    private static void CheckSection<[DynamicallyAccessedMembers(Properties)] T>(IConfiguration section)
    {
        PropertyInfo[] settings = typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.SetMethod is { IsPublic: true } && p.PropertyType != typeof(TimeProvider))
            .ToArray();
        foreach (IConfigurationSection child in section.GetChildren())
        {
            PropertyInfo? setting = settings.FirstOrDefault(p => string.Equals(p.Name, child.Key, StringComparison.OrdinalIgnoreCase));
            if (setting is null)
            {
                string why = string.Equals(child.Key, nameof(ServerOptions.Time), StringComparison.OrdinalIgnoreCase) && typeof(T) == typeof(ServerOptions)
                    ? "Time (the server's clock) is set in code only"
                    : "there is no such setting";
                throw new ServerConfigurationException($"Unknown configuration key '{child.Path}': {why}. The keys here are {string.Join(", ", settings.Select(p => p.Name))} (docs/deploy.md \"Configuration reference\"); fix or remove it.");
            }

            CheckValue(child, setting.PropertyType);
        }
    }

    private static void CheckValue(IConfigurationSection value, Type type)
    {
        bool hasChildren = value.GetChildren().Any();
        if (type == typeof(EntitlementOptions) || type == typeof(EntitlementRuleOptions))
        {
            RequireSection(value, hasChildren, "a section (a JSON object)");
            if (type == typeof(EntitlementOptions))
            {
                CheckSection<EntitlementOptions>(value);
            }
            else
            {
                CheckSection<EntitlementRuleOptions>(value);
            }

            return;
        }

        if (type == typeof(AttestationOptions) || type == typeof(AndroidAttestationTrustOptions) || type == typeof(AppleAttestationTrustOptions) ||
            type == typeof(AttestationPolicyOptions) || type == typeof(AndroidPolicyOptions) || type == typeof(ApplePolicyOptions))
        {
            RequireSection(value, hasChildren, "a section (a JSON object)");
            Action<IConfiguration> check = type switch
            {
                _ when type == typeof(AttestationOptions) => CheckSection<AttestationOptions>,
                _ when type == typeof(AndroidAttestationTrustOptions) => CheckSection<AndroidAttestationTrustOptions>,
                _ when type == typeof(AppleAttestationTrustOptions) => CheckSection<AppleAttestationTrustOptions>,
                _ when type == typeof(AttestationPolicyOptions) => CheckSection<AttestationPolicyOptions>,
                _ when type == typeof(AndroidPolicyOptions) => CheckSection<AndroidPolicyOptions>,
                _ => CheckSection<ApplePolicyOptions>,
            };
            check(value);
            return;
        }

        if (type == typeof(IDictionary<string, AttestationPolicyOptions>))
        {
            RequireSection(value, hasChildren, "a section of named policies (a JSON object, e.g. {\"store-apps\": {\"Android\": { … }}})");
            foreach (IConfigurationSection item in value.GetChildren())
            {
                CheckValue(item, typeof(AttestationPolicyOptions));
            }

            return;
        }

        if (type == typeof(IDictionary<string, string>))
        {
            RequireSection(value, hasChildren, "a section of names and string values (a JSON object, e.g. {\"plan\": \"pro\"})");
            foreach (IConfigurationSection item in value.GetChildren())
            {
                CheckValue(item, typeof(string));
            }

            return;
        }

        if (type == typeof(MasterKeyOptions) || type == typeof(MetricsOptions) || type == typeof(DatabaseOptions) || type == typeof(AuditOptions) || type == typeof(TrustedIssuerOptions))
        {
            RequireSection(value, hasChildren, "a section (a JSON object)");
            if (type == typeof(MasterKeyOptions))
            {
                CheckSection<MasterKeyOptions>(value);
            }
            else if (type == typeof(MetricsOptions))
            {
                CheckSection<MetricsOptions>(value);
            }
            else if (type == typeof(DatabaseOptions))
            {
                CheckSection<DatabaseOptions>(value);
            }
            else if (type == typeof(AuditOptions))
            {
                CheckSection<AuditOptions>(value);
            }
            else
            {
                CheckSection<TrustedIssuerOptions>(value);
            }

            return;
        }

        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(IList<>))
        {
            RequireSection(value, hasChildren, "a list (a JSON array; in the environment one variable per item, ending __0, __1, …)");
            foreach (IConfigurationSection item in value.GetChildren())
            {
                if (!int.TryParse(item.Key, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                {
                    throw new ServerConfigurationException($"The configuration key '{item.Path}' is not a list index: '{value.Path}' is a list, whose items are numbered 0, 1, ….");
                }

                CheckValue(item, type.GetGenericArguments()[0]);
            }

            return;
        }

        if (hasChildren)
        {
            throw new ServerConfigurationException($"The configuration key '{value.Path}' takes a single value, not a section or list; fix it (docs/deploy.md \"Configuration reference\").");
        }

        Type scalar = Nullable.GetUnderlyingType(type) ?? type;
        string? text = value.Value;
        string? expected = scalar switch
        {
            _ when scalar == typeof(string) => null,
            _ when scalar == typeof(bool) => bool.TryParse(text, out _) ? null : "true or false",
            _ when scalar == typeof(int) => int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out _) ? null : "a whole number, e.g. 600",
            _ when scalar == typeof(TimeSpan) => TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out _) ? null : "a duration [d.]hh:mm:ss, e.g. 7.00:00:00 for 7 days or 00:15:00 for 15 minutes",
            _ => throw new InvalidOperationException($"The setting '{value.Path}' has a type ({scalar.Name}) ServerConfiguration does not check; add it to CheckValue."),
        };
        if (expected is not null)
        {
            throw new ServerConfigurationException($"The configuration key '{value.Path}' must be {expected}; the value given is not.");
        }
    }

    private static void RequireSection(IConfigurationSection value, bool hasChildren, string what)
    {
        if (!hasChildren && !string.IsNullOrEmpty(value.Value))
        {
            throw new ServerConfigurationException($"The configuration key '{value.Path}' must be {what}, not a single value; fix it (docs/deploy.md \"Configuration reference\").");
        }
    }
}
