using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace ModelSeal.Server.Diagnostics;

/// <summary>
/// The server's metrics (a <see cref="Meter"/> named <see cref="Name"/>, one per server) and traces (the
/// <see cref="ActivitySource"/> <see cref="Source"/>), docs/deploy.md "Observability". Tags carry model ids, versions,
/// problem codes and provider kinds only: never subjects, tokens, credentials or key material.
/// </summary>
internal sealed class ServerTelemetry : IDisposable
{
    /// <summary>The name of the meter and of the activity source.</summary>
    public const string Name = "ModelSeal.Server";

    /// <summary>The activity source: <c>modelseal.key.release</c> with children <c>modelseal.store.write</c> and <c>modelseal.masterkey.unwrap</c>.</summary>
    public static readonly ActivitySource Source = new(Name, typeof(ServerTelemetry).Assembly.GetName().Version?.ToString());

    public const string ReleaseActivity = "modelseal.key.release";
    public const string StoreWriteActivity = "modelseal.store.write";
    public const string UnwrapActivity = "modelseal.masterkey.unwrap";
    public const string WrapActivity = "modelseal.masterkey.wrap";

    /// <summary>Where the release endpoint leaves the problem code of its answer (read when the response starts).</summary>
    internal const string ReasonItem = "modelseal.refusal-reason";

    private readonly Meter _meter;
    private readonly Counter<long> _releases;
    private readonly Counter<long> _refusals;
    private readonly Histogram<double> _releaseDuration;
    private readonly Histogram<double> _storeWriteDuration;
    private readonly Histogram<double> _masterKeyDuration;

    public ServerTelemetry()
    {
        _meter = new Meter(Name, typeof(ServerTelemetry).Assembly.GetName().Version?.ToString());
        _releases = _meter.CreateCounter<long>("modelseal.key.releases", "{release}", "Data keys released (HTTP 200 of POST /v1/keys/release).");
        _refusals = _meter.CreateCounter<long>("modelseal.key.refusals", "{refusal}", "Key release requests refused, by problem code (the last segment of the ProblemDetails type).");
        _releaseDuration = _meter.CreateHistogram<double>("modelseal.key.release.duration", "ms", "Time from the release request to the start of its response.");
        _storeWriteDuration = _meter.CreateHistogram<double>("modelseal.store.write.duration", "ms", "Duration of one group-commit write transaction (begin to durable commit).");
        _masterKeyDuration = _meter.CreateHistogram<double>("modelseal.masterkey.operation.duration", "ms", "Duration of a master-key provider wrap or unwrap.");
    }

    public void KeyReleased(string modelId) => _releases.Add(1, new KeyValuePair<string, object?>("model", modelId));

    public void KeyRefused(string reason) => _refusals.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void ReleaseDuration(double milliseconds, string outcome) =>
        _releaseDuration.Record(milliseconds, new KeyValuePair<string, object?>("outcome", outcome));

    public void StoreWrite(long startTimestamp, bool committed) =>
        _storeWriteDuration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalMilliseconds, new KeyValuePair<string, object?>("outcome", committed ? "commit" : "error"));

    public void MasterKeyOperation(long startTimestamp, string provider, string operation) =>
        _masterKeyDuration.Record(
            Stopwatch.GetElapsedTime(startTimestamp).TotalMilliseconds,
            new KeyValuePair<string, object?>("provider", provider),
            new KeyValuePair<string, object?>("operation", operation));

    public void Dispose() => _meter.Dispose();
}
