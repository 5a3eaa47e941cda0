using System.Data.Common;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.MasterKeys;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Domain;

/// <summary>
/// Whether the server can release keys: the database answers and the master key wraps and unwraps. The answer is
/// kept for <see cref="CacheDuration"/> (by the server's clock), so that however often <c>/health/ready</c> is asked —
/// it is anonymous — the database and the master-key provider (an HSM) see at most one probe per interval; callers
/// that arrive while a probe runs wait for its answer instead of starting their own.
/// Other conditions (<see cref="IReadinessCondition"/>: the trusted issuers whose keys are discovered have been fetched)
/// are asked on every call, not cached: each is a field read.
/// </summary>
internal sealed class Readiness(Store store, MasterKeyRing masterKeys, Clock clock, ILogger<Readiness> logger, IEnumerable<IReadinessCondition> conditions)
{
    private readonly IReadinessCondition[] _conditions = [.. conditions];

    /// <summary>How long an answer (ready or not) is reused.</summary>
    public static readonly TimeSpan CacheDuration = TimeSpan.FromSeconds(5);

    private const string ProbeKeyId = "readiness-probe";

    private readonly Lock _lock = new();
    private DateTimeOffset? _checkedAt;
    private bool _ready;
    private int _checks;

    /// <summary>How many probes have run (for tests).</summary>
    internal int Checks => Volatile.Read(ref _checks);

    public bool IsReady() => IsProbedReady() && _conditions.All(condition => condition.IsReady);

    private bool IsProbedReady()
    {
        lock (_lock)
        {
            DateTimeOffset now = clock.Time.GetUtcNow();
            if (_checkedAt is { } at && now >= at && now - at < CacheDuration)
            {
                return _ready;
            }

            _ready = Probe();
            _checkedAt = now;
            Interlocked.Increment(ref _checks);
            return _ready;
        }
    }

    private bool Probe()
    {
        try
        {
            store.Read(s => s.Models.Count());
            Span<byte> probe = stackalloc byte[ModelKey.SizeInBytes];
            (int version, byte[] wrapped) = masterKeys.Wrap(probe, ProbeKeyId);
            masterKeys.Unwrap(version, wrapped, ProbeKeyId, probe);
            return true;
        }
        catch (Exception e) when (e is DbException or CryptographicException or InvalidOperationException)
        {
            ServerLog.NotReady(logger, e.GetType().Name);
            return false;
        }
    }
}

/// <summary>Something besides the database and the master key that must hold before the server is ready.</summary>
internal interface IReadinessCondition
{
    bool IsReady { get; }
}
