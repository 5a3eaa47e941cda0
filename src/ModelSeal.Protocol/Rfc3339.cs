using System.Globalization;

namespace ModelSeal.Protocol;

/// <summary>RFC 3339 UTC times, whole seconds: how every time in the protocol is written and read (docs/protocol.md).</summary>
internal static class Rfc3339
{
    public static string Format(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    public static string? Format(DateTimeOffset? time) => time is { } t ? Format(t) : null;

    /// <summary>Parses an RFC 3339 date-time with an explicit offset (<c>Z</c> or <c>±hh:mm</c>), truncated to seconds.</summary>
    public static bool TryParse(string? text, out DateTimeOffset time)
    {
        time = default;
        if (text is null || text.Length < 20 || (text[10] != 'T' && text[10] != 't'))
        {
            return false;
        }

        bool hasOffset = text[^1] is 'Z' or 'z' || (text.Length >= 25 && text[^6] is '+' or '-' && text[^3] == ':');
        if (!hasOffset || !DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal, out DateTimeOffset parsed))
        {
            return false;
        }

        time = DateTimeOffset.FromUnixTimeSeconds(parsed.ToUnixTimeSeconds());
        return true;
    }
}
