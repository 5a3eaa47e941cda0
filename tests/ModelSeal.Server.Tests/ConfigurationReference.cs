using System.Collections;
using System.Globalization;
using System.Reflection;
using System.Text.Json.Nodes;

namespace ModelSeal.Server.Tests;

/// <summary>
/// Checks that every setting of an options type (found by reflection: public properties, nested option sections and
/// list elements, recursively) is settable, reaches the loaded options from a JSON file and from the environment, and
/// has a row in the configuration reference. Used on <c>ServerOptions</c>, and on a test-only type to show that it
/// reports what it should.
/// </summary>
internal static class ConfigurationReference
{
    /// <summary>One leaf setting: its configuration key (<c>TrustedIssuers:0:Issuer</c>), its key as documented
    /// (<c>TrustedIssuers:n:Issuer</c>), the properties from the root to it, and the value the check sets.</summary>
    internal sealed record Setting(string Key, string DocumentedKey, PropertyInfo[] Path, object Value);

    /// <summary>Every leaf setting of <paramref name="root"/>, and the properties that cannot be configured.</summary>
    public static (List<Setting> Settings, List<string> Problems) Enumerate(Type root, object defaults, ISet<string> codeOnly)
    {
        var settings = new List<Setting>();
        var problems = new List<string>();
        Walk(root, defaults, string.Empty, string.Empty, [], settings, problems, codeOnly);
        return (settings, problems);
    }

    /// <summary>A JSON document that sets every setting to its check value.</summary>
    public static string Json(IEnumerable<Setting> settings)
    {
        var root = new JsonObject();
        foreach (Setting setting in settings)
        {
            string[] segments = setting.Key.Split(':');
            JsonNode node = root;
            for (int i = 0; i < segments.Length - 1; i++)
            {
                bool nextIsIndex = int.TryParse(segments[i + 1], out _);
                node = Child(node, segments[i], () => nextIsIndex ? new JsonArray() : new JsonObject());
            }

            JsonNode value = setting.Value is IList<string> list ? new JsonArray(list.Select(item => (JsonNode)JsonValue.Create(item)!).ToArray()) : JsonValue.Create(Text(setting.Value))!;
            Set(node, segments[^1], value);
        }

        return root.ToJsonString();
    }

    /// <summary>Environment variables (<c>MODELSEAL_A__B</c>) that set every setting to its check value.</summary>
    public static Dictionary<string, string> Environment(IEnumerable<Setting> settings)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (Setting setting in settings)
        {
            string name = "MODELSEAL_" + setting.Key.Replace(":", "__", StringComparison.Ordinal);
            if (setting.Value is IList<string> list)
            {
                for (int i = 0; i < list.Count; i++)
                {
                    environment[$"{name}__{i}"] = list[i];
                }
            }
            else
            {
                environment[name] = Text(setting.Value);
            }
        }

        return environment;
    }

    /// <summary>The settings whose value in <paramref name="loaded"/> is not the check value, with how they were set.</summary>
    public static IEnumerable<string> NotReached(IEnumerable<Setting> settings, object loaded, string how)
    {
        foreach (Setting setting in settings)
        {
            object? actual = Read(loaded, setting);
            bool same = setting.Value is IList<string> expected
                ? actual is IEnumerable<string> items && items.SequenceEqual(expected)
                : actual is IDictionary<string, string> named
                    ? named.TryGetValue(setting.Key.Split(':')[^1], out string? value) && Equals(value, setting.Value)
                    : Equals(actual, setting.Value);
            if (!same)
            {
                yield return $"{setting.Key} set {how} did not reach the loaded options (got '{actual}')";
            }
        }
    }

    /// <summary>
    /// The settings without a row in the reference table of <paramref name="markdown"/>: a table row whose first cell
    /// is the key in backticks and that shows the environment variable form.
    /// </summary>
    public static IEnumerable<string> Undocumented(IEnumerable<Setting> settings, string markdown)
    {
        string[] rows = markdown.Split('\n').Where(line => line.TrimStart().StartsWith('|')).ToArray();
        foreach (Setting setting in settings)
        {
            string cell = $"`{setting.DocumentedKey}`";
            string variable = "MODELSEAL_" + setting.DocumentedKey.Replace(":", "__", StringComparison.Ordinal);
            string? row = rows.FirstOrDefault(r => r.Split('|', StringSplitOptions.TrimEntries).ElementAtOrDefault(1) == cell);
            if (row is null)
            {
                yield return $"{setting.DocumentedKey} has no row in the configuration reference";
            }
            else if (!row.Contains(variable, StringComparison.Ordinal))
            {
                yield return $"{setting.DocumentedKey}'s row does not show the environment variable {variable}";
            }
        }
    }

    private static void Walk(Type type, object? defaults, string prefix, string documentedPrefix, PropertyInfo[] path, List<Setting> settings, List<string> problems, ISet<string> codeOnly)
    {
        foreach (PropertyInfo property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            string key = prefix + property.Name;
            string documented = documentedPrefix + property.Name;
            if (codeOnly.Contains(key))
            {
                continue;
            }

            if (property.SetMethod is not { IsPublic: true })
            {
                problems.Add($"{key} is not settable (no public setter), so no configuration can set it");
                continue;
            }

            PropertyInfo[] here = [.. path, property];
            object? current = defaults is null ? null : property.GetValue(defaults);
            Type propertyType = property.PropertyType;
            Type? element = propertyType.IsGenericType && propertyType.GetGenericTypeDefinition() == typeof(IList<>) ? propertyType.GetGenericArguments()[0] : null;
            if (propertyType == typeof(IDictionary<string, string>))
            {
                // A section of names and values: one name, NAME, set to a string.
                settings.Add(new Setting(key + ":NAME", documented + ":NAME", here, $"value-of-{key.Replace(':', '-')}"));
            }
            else if (propertyType.IsGenericType && propertyType.GetGenericTypeDefinition() == typeof(IDictionary<,>) && propertyType.GetGenericArguments()[0] == typeof(string))
            {
                // Named sections (Attestation:Policies:NAME): one, NAME, with every setting of the section type.
                Type section = propertyType.GetGenericArguments()[1];
                Walk(section, Activator.CreateInstance(section), $"{key}:NAME:", $"{documented}:NAME:", here, settings, problems, codeOnly);
            }
            else if (element == typeof(string))
            {
                settings.Add(new Setting(key, documented, here, new List<string> { $"{property.Name}-a", $"{property.Name}-b" }));
            }
            else if (element is not null)
            {
                // One element, at index 0, with every setting of the element type.
                Walk(element, Activator.CreateInstance(element), $"{key}:0:", $"{documented}:n:", here, settings, problems, codeOnly);
            }
            else if (IsScalar(propertyType))
            {
                settings.Add(new Setting(key, documented, here, Different(propertyType, current, key)));
            }
            else
            {
                Walk(propertyType, current, key + ":", documented + ":", here, settings, problems, codeOnly);
            }
        }
    }

    private static bool IsScalar(Type type)
    {
        Type t = Nullable.GetUnderlyingType(type) ?? type;
        return t.IsPrimitive || t.IsEnum || t == typeof(string) || t == typeof(TimeSpan) || t == typeof(decimal) || t == typeof(Uri) || !t.IsClass;
    }

    /// <summary>A valid value of <paramref name="type"/> that differs from <paramref name="current"/>.</summary>
    private static object Different(Type type, object? current, string key)
    {
        Type t = Nullable.GetUnderlyingType(type) ?? type;
        return t switch
        {
            _ when t == typeof(string) => $"value-of-{key.Replace(':', '-')}",
            _ when t == typeof(bool) => !(current is true),
            _ when t == typeof(int) => (current is int i ? i : 0) + 17,
            _ when t == typeof(TimeSpan) => (current is TimeSpan s ? s : TimeSpan.Zero) + TimeSpan.FromSeconds(61),
            _ => throw new NotSupportedException($"{key}: add a check value for {t.Name} to ConfigurationReference.Different."),
        };
    }

    private static string Text(object value) => value switch
    {
        bool b => b ? "true" : "false",
        TimeSpan s => s.ToString("c", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString()!,
    };

    private static object? Read(object root, Setting setting)
    {
        object? current = root;
        string[] segments = setting.Key.Split(':');
        int segment = 0;
        foreach (PropertyInfo property in setting.Path)
        {
            current = current is null ? null : property.GetValue(current);
            segment++;
            if (segment < segments.Length && int.TryParse(segments[segment], out int index))
            {
                current = current is IList list && list.Count > index ? list[index] : null;
                segment++;
            }
            else if (segment < segments.Length - 1 && current is IDictionary named && named.GetType().GetGenericArguments()[1] != typeof(string))
            {
                current = named.Contains(segments[segment]) ? named[segments[segment]] : null;
                segment++;
            }
        }

        return current;
    }

    private static JsonNode Child(JsonNode node, string segment, Func<JsonNode> create)
    {
        if (node is JsonArray array)
        {
            int index = int.Parse(segment, CultureInfo.InvariantCulture);
            while (array.Count <= index)
            {
                array.Add(create());
            }

            return array[index]!;
        }

        JsonObject obj = node.AsObject();
        if (obj[segment] is not { } child)
        {
            child = create();
            obj[segment] = child;
        }

        return child;
    }

    private static void Set(JsonNode node, string segment, JsonNode value)
    {
        if (node is JsonArray array)
        {
            array.Add(value);
        }
        else
        {
            node.AsObject()[segment] = value;
        }
    }
}
