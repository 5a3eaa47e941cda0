using System.Globalization;
using ModelSeal.Protocol;

namespace ModelSeal.Cli;

/// <summary>Times given on the command line: RFC 3339 with an offset, or a date alone (midnight UTC).</summary>
internal static class Times
{
    /// <summary>What a time option accepts, for help and errors.</summary>
    public const string Format = "RFC 3339 with an offset (2026-12-31T23:59:59Z, 2026-12-31T23:59:59+01:00) or a date yyyy-mm-dd (midnight UTC)";

    public static bool TryParse(string text, out DateTimeOffset time)
    {
        if (Rfc3339.TryParse(text, out time))
        {
            return true;
        }

        if (DateTime.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out DateTime date))
        {
            time = new DateTimeOffset(date, TimeSpan.Zero);
            return true;
        }

        return false;
    }
}
