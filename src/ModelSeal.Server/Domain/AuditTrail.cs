using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelSeal.Protocol;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.Security;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Domain;

/// <summary>
/// The audit log as the rules use it: changes and releases append their record inside their own write transaction;
/// refusals are recorded here, best effort (a refusal stays a refusal whatever happens to its record), coalesced
/// within <see cref="AuditOptions.RefusalWindow"/> (docs/protocol.md section 4.2). A background pass, every
/// <see cref="Tick"/> of the server's clock, writes the refusals of an ended window and the signed checkpoints that are
/// due (section 4.3); stopping the server writes both.
/// </summary>
internal sealed class AuditTrail : IHostedService, IDisposable
{
    /// <summary>The most records one page of <see cref="List"/> holds.</summary>
    public const int MaxPage = 500;

    /// <summary>The attribute of a coalesced refusal record: how many refusals it stands for.</summary>
    public const string CountAttribute = "count";

    /// <summary>The attribute of a coalesced refusal record: when the first of its refusals happened.</summary>
    public const string FirstAtAttribute = "firstAt";

    /// <summary>The attribute of a coalesced refusal record: when the last of its refusals happened.</summary>
    public const string LastAtAttribute = "lastAt";

    /// <summary>The outcome of the record that counts the refusals beyond <see cref="AuditOptions.MaxPendingRefusals"/>.</summary>
    public const string OverflowOutcome = "overflow";

    /// <summary>How often the background pass runs, on the server's clock.</summary>
    public static readonly TimeSpan Tick = TimeSpan.FromSeconds(1);

    private readonly Store _store;
    private readonly Clock _clock;
    private readonly AuditOptions _options;
    private readonly ISigningKey _answerKey;
    private readonly ILogger<AuditTrail> _logger;
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _pass = new(1, 1);
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly DateTimeOffset _started;
    private Window _window = new();
    private bool _stopped;
    private ITimer? _timer;
    private Task? _loop;
    private DateTimeOffset _lastPass = DateTimeOffset.MinValue;
    private int _disposed;
    private readonly List<(DateTimeOffset Time, TaskCompletionSource Done)> _passWaiters = [];

    public AuditTrail(Store store, Clock clock, ServerOptions options, SigningKeys keys, ILogger<AuditTrail> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(keys);
        _store = store;
        _clock = clock;
        _options = options.Audit;
        _answerKey = keys.Answer;
        _logger = logger;
        _started = clock.Now();
    }

    /// <summary>Distinct refusals held in the current window (for tests and diagnostics).</summary>
    internal int PendingRefusals
    {
        get
        {
            lock (_lock)
            {
                return _window.Groups.Count;
            }
        }
    }

    /// <summary>
    /// Records a refusal: with a refusal window, counts it in the window's record of identical refusals (written when
    /// the window ends); without one, or once the server stops, appends its record in its own transaction. Failures
    /// are logged, never thrown.
    /// </summary>
    public Task TryRecordAsync(AuditEntry entry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return entry.Event == AuditEvents.KeyRefused && Coalesce(entry) ? Task.CompletedTask : WriteAsync([entry], cancellationToken);
    }

    /// <summary>Up to <paramref name="limit"/> records after id <paramref name="after"/> that match <paramref name="filter"/> (default: all).</summary>
    public List<AuditRecord> List(long after, int limit, AuditFilter? filter = null) => _store.Read(s => s.Audit.List(after, limit, filter ?? AuditFilter.None));

    /// <summary>
    /// Walks the hash chain (docs/protocol.md section 4.1) and checks the latest signed checkpoint (section 4.3): its
    /// signature under the answer key, and that the log still holds the record it covers.
    /// </summary>
    public AuditVerification Verify(long? expectRecords, byte[]? expectHash)
    {
        // The checkpoint first: the log only grows, so every record it covers is read after it.
        AuditVerification result = _store.Read(s => s.Audit.Verify(expectRecords, expectHash, s.Audit.LatestCheckpoint()));
        if (result.Checkpoint is not { } checkpoint)
        {
            return result;
        }

        if (checkpoint.IsSignedBy(_answerKey.PublicParameters, _answerKey.KeyId))
        {
            return result;
        }

        string why = string.Equals(checkpoint.KeyId, _answerKey.KeyId, StringComparison.Ordinal)
            ? "its signature does not verify under the server's answer key"
            : $"it names key {checkpoint.KeyId}, not the server's answer key {_answerKey.KeyId} (instances on one database must share one answer key, docs/deploy.md)";
        return result.Verified
            ? result with { Verified = false, Reason = string.Create(CultureInfo.InvariantCulture, $"the latest checkpoint (record {checkpoint.LastId}) is not the server's: {why}."), CheckpointVerified = false }
            : result with { CheckpointVerified = false };
    }

    /// <summary>
    /// Starts the background pass on the server's clock, after checkpointing the head with the answer key when the
    /// latest checkpoint was signed by another one (so that verify never finds a checkpoint it cannot check).
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await CheckpointAsync(final: false, _clock.Now(), cancellationToken).ConfigureAwait(false);
        _timer = _clock.Time.CreateTimer(_ => Wake(), null, Tick, Tick);
        _loop = Task.Run(LoopAsync, CancellationToken.None);
    }

    /// <summary>
    /// Graceful shutdown: stops the background pass, writes the pending refusals and a checkpoint of the whole log.
    /// Refusals after this are written one by one.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            _stopped = true;
        }

        _timer?.Dispose();
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }

        await RunPassAsync(final: true, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// One pass, as the timer runs it: writes the window's refusals once it has ended (or filled up), and a checkpoint
    /// when one is due; with <paramref name="final"/> writes both whatever the time.
    /// </summary>
    internal async Task RunPassAsync(bool final, CancellationToken cancellationToken)
    {
        await _pass.WaitAsync(cancellationToken).ConfigureAwait(false);
        DateTimeOffset now = _clock.Now();
        try
        {
            await FlushAsync(final, now).ConfigureAwait(false);
            await CheckpointAsync(final, now, cancellationToken).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // The background pass logs and goes on; the next pass tries again.
        catch (Exception e) when (e is not OperationCanceledException)
#pragma warning restore CA1031
        {
            ServerLog.AuditPassFailed(_logger, e.GetType().Name);
        }
        finally
        {
            _pass.Release();
            CompletePassWaiters(now);
        }
    }

    /// <summary>
    /// A task that completes once a pass that read the clock at <paramref name="time"/> or later has ended (tests: move
    /// the clock, which runs the timer, then await the pass that saw it).
    /// </summary>
    internal Task PassAsync(DateTimeOffset time)
    {
        lock (_passWaiters)
        {
            if (_lastPass >= time)
            {
                return Task.CompletedTask;
            }

            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _passWaiters.Add((time, done));
            return done.Task;
        }
    }

    /// <summary>Stops the timer and the background pass (without the last pass: that is <see cref="StopAsync"/>).</summary>
    public void Dispose()
    {
        // The container disposes it twice: as itself and as a hosted service.
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        _timer?.Dispose();
        _stopping.Cancel();
        _loop?.Wait(TimeSpan.FromSeconds(10));
        _stopping.Dispose();
        _pass.Dispose();
        _wake.Dispose();
    }

    private void CompletePassWaiters(DateTimeOffset now)
    {
        lock (_passWaiters)
        {
            _lastPass = now > _lastPass ? now : _lastPass;
            foreach ((DateTimeOffset time, TaskCompletionSource done) in _passWaiters.Where(w => w.Time <= now).ToList())
            {
                _passWaiters.Remove((time, done));
                done.TrySetResult();
            }
        }
    }

    private void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // A pass is already due.
        }
        catch (ObjectDisposedException)
        {
            // Stopped.
        }
    }

    private async Task LoopAsync()
    {
        try
        {
            while (true)
            {
                await _wake.WaitAsync(_stopping.Token).ConfigureAwait(false);
                await RunPassAsync(final: false, _stopping.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            // Stopped: StopAsync runs the last pass.
        }
    }

    /// <summary>Counts <paramref name="entry"/> in the current window; false when it is to be written now (no window, or stopped).</summary>
    private bool Coalesce(AuditEntry entry)
    {
        if (_options.RefusalWindow <= TimeSpan.Zero)
        {
            return false;
        }

        string key = Convert.ToBase64String(AuditChain.Encode(0, 0, entry));
        DateTimeOffset now = _clock.Now();
        bool full;
        lock (_lock)
        {
            if (_stopped)
            {
                return false;
            }

            Window window = _window;
            window.Start ??= now;
            if (window.Groups.TryGetValue(key, out Group? group))
            {
                group.Add(now);
            }
            else if (window.Groups.Count < _options.MaxPendingRefusals)
            {
                var added = new Group(entry, now);
                window.Groups.Add(key, added);
                window.InOrder.Add(added);
            }
            else if (window.Overflow is { } overflow)
            {
                overflow.Add(now);
            }
            else
            {
                window.Overflow = new Group(new AuditEntry(AuditEvents.KeyRefused, OverflowOutcome), now);
            }

            full = window.Groups.Count >= _options.MaxPendingRefusals && !window.FlushRequested;
            window.FlushRequested |= full;
        }

        if (full)
        {
            // Written at once, not at the window's end: the next refusals start a new window.
            Wake();
        }

        return true;
    }

    /// <summary>Writes the window's records when it has ended or filled up (or always, with <paramref name="final"/>).</summary>
    private async Task FlushAsync(bool final, DateTimeOffset now)
    {
        Window ended;
        lock (_lock)
        {
            if (_window.Start is not { } start || (!final && !_window.FlushRequested && now < start + _options.RefusalWindow))
            {
                return;
            }

            ended = _window;
            _window = new Window();
        }

        List<AuditEntry> entries = ended.InOrder.ConvertAll(g => g.ToEntry());
        if (ended.Overflow is { } overflow)
        {
            entries.Add(overflow.ToEntry());
        }

        await WriteAsync(entries, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Appends <paramref name="entries"/> in one transaction; failures are logged, never thrown.</summary>
    private async Task WriteAsync(List<AuditEntry> entries, CancellationToken cancellationToken)
    {
        try
        {
            DateTimeOffset now = _clock.Now();
            await _store.WriteAsync(
                s =>
                {
                    foreach (AuditEntry entry in entries)
                    {
                        s.Audit.Append(entry, now);
                    }

                    return entries.Count;
                },
                cancellationToken).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // Best effort by design.
        catch (Exception e)
#pragma warning restore CA1031
        {
            ServerLog.RefusalNotAudited(_logger, e.GetType().Name);
        }
    }

    /// <summary>
    /// Writes a checkpoint of the log's head when <see cref="AuditOptions.CheckpointEvery"/> records were appended
    /// since the last one, or records were appended and the last one is <see cref="AuditOptions.CheckpointInterval"/>
    /// old (the server's start time when there is none); with <paramref name="final"/> whenever records were appended.
    /// </summary>
    private async Task CheckpointAsync(bool final, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (!final && _options.CheckpointEvery == 0 && _options.CheckpointInterval == TimeSpan.Zero)
        {
            return;
        }

        ((long id, byte[]? hash), AuditCheckpoint? latest) = _store.Read(s => (s.Audit.Head(), s.Audit.LatestCheckpoint()));
        long since = id - (latest?.LastId ?? 0);

        // A new answer key (moved into an HSM, a lost key file replaced) cannot vouch for the old key's checkpoints:
        // the head is checkpointed with the new key at once, so that verify goes on checking what comes after it.
        bool rekeyed = latest is not null && !string.Equals(latest.KeyId, _answerKey.KeyId, StringComparison.Ordinal);
        bool due = final || rekeyed
            || (_options.CheckpointEvery > 0 && since >= _options.CheckpointEvery)
            || (_options.CheckpointInterval > TimeSpan.Zero && now - (latest?.At ?? _started) >= _options.CheckpointInterval);
        if (hash is null || (since <= 0 && !rekeyed) || !due)
        {
            return;
        }

        // Records commit in id order, so every record up to the head read above is there to count.
        long records = (latest?.Records ?? 0) + _store.Read(s => s.Audit.CountBetween(latest?.LastId ?? 0, id));
        if (rekeyed)
        {
            ServerLog.CheckpointKeyChanged(_logger, latest!.KeyId, _answerKey.KeyId, latest.LastId);
        }

        var at = DateTimeOffset.FromUnixTimeSeconds(now.ToUnixTimeSeconds());
        byte[] signature = _answerKey.SignHash(SHA256.HashData(AuditCheckpointInfo.SignedEncoding(records, id, hash, at.ToUnixTimeSeconds())));
        var checkpoint = new AuditCheckpoint(0, records, id, hash, at, _answerKey.KeyId, signature);
        await _store.WriteAsync(s => s.Audit.InsertCheckpoint(checkpoint), cancellationToken).ConfigureAwait(false);
        ServerLog.CheckpointWritten(_logger, records, id, _answerKey.KeyId);
    }

    /// <summary>The refusals of one window, by their identity (everything their record hashes but id and time).</summary>
    private sealed class Window
    {
        public Dictionary<string, Group> Groups { get; } = new(StringComparer.Ordinal);

        /// <summary>The groups in the order of their first refusal: the order their records are written in.</summary>
        public List<Group> InOrder { get; } = [];

        public Group? Overflow { get; set; }

        public DateTimeOffset? Start { get; set; }

        public bool FlushRequested { get; set; }
    }

    /// <summary>Identical refusals: the first one's record, how many, when the first and the last happened.</summary>
    private sealed class Group(AuditEntry entry, DateTimeOffset first)
    {
        private readonly DateTimeOffset _first = first;
        private long _count = 1;
        private DateTimeOffset _last = first;

        public void Add(DateTimeOffset at)
        {
            _count++;
            _last = at;
        }

        public AuditEntry ToEntry()
        {
            var attributes = new Dictionary<string, string>(entry.Attributes ?? new Dictionary<string, string>(), StringComparer.Ordinal)
            {
                [CountAttribute] = _count.ToString(CultureInfo.InvariantCulture),
                [FirstAtAttribute] = Rfc3339.Format(_first),
                [LastAtAttribute] = Rfc3339.Format(_last),
            };
            return entry with { Attributes = attributes };
        }
    }
}
