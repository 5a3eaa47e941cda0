using System.Globalization;

namespace ModelSeal.Cli;

/// <summary>Formatting of numbers, durations and model descriptions for human output (culture-invariant).</summary>
internal static class Text
{
    /// <summary>"578,966".</summary>
    public static string Count(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    /// <summary>"1 chunk", "36 chunks".</summary>
    public static string Plural(long value, string noun) => Count(value) + " " + (value == 1 ? noun : noun + "s");

    /// <summary>"12 ms" below 10 seconds, else "12.3 s".</summary>
    public static string Duration(TimeSpan elapsed) =>
        elapsed.TotalSeconds < 10
            ? ((long)elapsed.TotalMilliseconds).ToString(CultureInfo.InvariantCulture) + " ms"
            : elapsed.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture) + " s";

    /// <summary>"classifier 1 (onnx, 578,966 bytes, 36 chunks, key local-…)".</summary>
    public static string Describe(SealedModelHeader header) =>
        $"{header.ModelId} {header.ModelVersion} ({header.ContentType.ToName()}, {Plural(header.PlaintextLength, "byte")}, {Plural(header.ChunkCount, "chunk")}, key {header.KeyId})";

    /// <summary>ISO 8601 in UTC, e.g. "2025-11-23T01:49:00Z".</summary>
    public static string Timestamp(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>
    /// <paramref name="text"/> safe for a terminal: control characters (C0, DEL, C1 — escape sequences among them) and
    /// the Unicode bidirectional controls, which could rewrite or disguise what the terminal shows, are written as
    /// <c>\u{XXXX}</c>; everything else is unchanged. For text that comes from outside (the key server's answers,
    /// subjects, ids, file names).
    /// </summary>
    public static string Safe(string? text)
    {
        if (string.IsNullOrEmpty(text) || !text.Any(IsUnsafe))
        {
            return text ?? string.Empty;
        }

        var safe = new System.Text.StringBuilder(text.Length + 16);
        foreach (char c in text)
        {
            if (IsUnsafe(c))
            {
                safe.Append(CultureInfo.InvariantCulture, $"\\u{{{(int)c:X4}}}");
            }
            else
            {
                safe.Append(c);
            }
        }

        return safe.ToString();
    }

    private static bool IsUnsafe(char c) => char.IsControl(c) || c is '\u061C' or '\u200E' or '\u200F' or (>= '\u202A' and <= '\u202E') or (>= '\u2066' and <= '\u2069');
}
