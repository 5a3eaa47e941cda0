using System.Globalization;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Domain;

/// <summary>One model's releases and refusals (by problem code) on one UTC day.</summary>
internal sealed record UsageRow(string ModelId, DateOnly Day, long Releases, IReadOnlyDictionary<string, long> Refusals);

/// <summary>
/// The usage summary (docs/protocol.md section 3): key releases and refusals per model per UTC day, counted from the
/// audit log. A coalesced refusal record (section 4.2) counts as its <see cref="AuditTrail.CountAttribute"/>
/// refusals; refusals recorded without a model (the overflow count) are counted under model <see cref="NoModel"/>.
/// </summary>
internal sealed class UsageSummary(Store store)
{
    /// <summary>The model id under which refusals without a model are counted.</summary>
    public const string NoModel = "*";

    private static readonly string[] KeyEvents = [AuditEvents.KeyReleased, AuditEvents.KeyRefused];

    /// <summary>The rows for records at or after <paramref name="since"/> and before <paramref name="until"/>, by model id, then day.</summary>
    public List<UsageRow> Summarize(DateTimeOffset? since, DateTimeOffset? until) =>
        store.Read(s => Summarize(s.Audit.All(new AuditFilter(Events: KeyEvents, Since: since, Until: until))));

    /// <summary>Counts <paramref name="records"/> (key releases and refusals) per model per UTC day.</summary>
    internal static List<UsageRow> Summarize(IEnumerable<AuditRecord> records)
    {
        var rows = new SortedDictionary<(string ModelId, DateOnly Day), (long Releases, SortedDictionary<string, long> Refusals)>(
            Comparer<(string ModelId, DateOnly Day)>.Create((a, b) => string.CompareOrdinal(a.ModelId, b.ModelId) is var c and not 0 ? c : a.Day.CompareTo(b.Day)));
        foreach (AuditRecord record in records)
        {
            var key = (record.Entry.ModelId ?? NoModel, DateOnly.FromDateTime(record.At.UtcDateTime));
            if (!rows.TryGetValue(key, out var row))
            {
                row = (0, new SortedDictionary<string, long>(StringComparer.Ordinal));
            }

            if (record.Entry.Event == AuditEvents.KeyReleased)
            {
                row.Releases++;
            }
            else
            {
                row.Refusals[record.Entry.Outcome] = row.Refusals.GetValueOrDefault(record.Entry.Outcome) + Count(record.Entry);
            }

            rows[key] = row;
        }

        return [.. rows.Select(r => new UsageRow(r.Key.ModelId, r.Key.Day, r.Value.Releases, r.Value.Refusals))];
    }

    private static long Count(AuditEntry entry) =>
        entry.Attributes?.GetValueOrDefault(AuditTrail.CountAttribute) is { } text && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long count) && count > 0 ? count : 1;
}
