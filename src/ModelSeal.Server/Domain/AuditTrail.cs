using Microsoft.Extensions.Logging;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Domain;

/// <summary>
/// The audit log as the rules use it: refusals are recorded on their own (best effort: a refusal stays a refusal
/// whatever happens to its record); changes and releases append their record inside their own write transaction.
/// </summary>
internal sealed class AuditTrail(Store store, Clock clock, ILogger<AuditTrail> logger)
{
    /// <summary>The most records one page of <see cref="List"/> holds.</summary>
    public const int MaxPage = 500;

    /// <summary>Appends a record in its own transaction; failures are logged, never thrown.</summary>
    public async Task TryRecordAsync(AuditEntry entry, CancellationToken cancellationToken)
    {
        try
        {
            DateTimeOffset now = clock.Now();
            await store.WriteAsync(s => s.Audit.Append(entry, now), cancellationToken).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // Best effort by design.
        catch (Exception e)
#pragma warning restore CA1031
        {
            ServerLog.RefusalNotAudited(logger, e.GetType().Name);
        }
    }

    /// <summary>Up to <paramref name="limit"/> records after id <paramref name="after"/>.</summary>
    public List<AuditRecord> List(long after, int limit) => store.Read(s => s.Audit.List(after, limit));

    /// <summary>Walks the hash chain (docs/protocol.md section 4.1).</summary>
    public AuditVerification Verify(long? expectRecords, byte[]? expectHash) => store.Read(s => s.Audit.Verify(expectRecords, expectHash));
}
