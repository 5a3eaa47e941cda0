using System.Globalization;

namespace ModelSeal.Cli;

/// <summary>
/// A one-line progress bar on standard error, redrawn in place with <c>\r</c> at most ten times a second and erased
/// when disposed. Thread-safe: the library reports from worker threads.
/// </summary>
internal sealed class ProgressBar : IProgress<ModelSealProgress>, IDisposable
{
    private const int BarWidth = 24;
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    private readonly TextWriter _writer;
    private readonly string _label;
    private readonly TimeProvider _time;
    private readonly long _start;
    private readonly Lock _lock = new();
    private long _lastDraw;
    private int _lastWidth;
    private bool _drawn;
    private bool _closed;

    private ProgressBar(TextWriter writer, string label, TimeProvider time)
    {
        _writer = writer;
        _label = label;
        _time = time;
        _start = time.GetTimestamp();
    }

    /// <summary>A progress bar when standard error is interactive and the work is large enough, else null (silence).</summary>
    public static ProgressBar? Create(CliContext context, string label, long totalBytes) =>
        context.Interactive && totalBytes > context.ProgressThreshold ? new ProgressBar(context.Error, label, context.Time) : null;

    /// <inheritdoc />
    public void Report(ModelSealProgress value)
    {
        lock (_lock)
        {
            long now = _time.GetTimestamp();
            if (_closed || (_drawn && _time.GetElapsedTime(_lastDraw, now) < Interval))
            {
                return;
            }

            _lastDraw = now;
            _drawn = true;
            string line = Render(value, _time.GetElapsedTime(_start, now));
            _writer.Write("\r" + line.PadRight(_lastWidth));
            _writer.Flush();
            _lastWidth = line.Length;
        }
    }

    /// <summary>Erases the bar.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (!_closed && _drawn)
            {
                _writer.Write("\r" + new string(' ', _lastWidth) + "\r");
                _writer.Flush();
            }

            _closed = true;
        }
    }

    private string Render(ModelSealProgress value, TimeSpan elapsed)
    {
        const double MiB = 1024 * 1024;
        double fraction = value.TotalBytes <= 0 ? 1 : Math.Clamp((double)value.BytesDone / value.TotalBytes, 0, 1);
        int filled = (int)(fraction * BarWidth);
        double rate = elapsed.TotalSeconds > 0 ? value.BytesDone / MiB / elapsed.TotalSeconds : 0;
        return string.Create(
            CultureInfo.InvariantCulture,
            $"{_label} [{new string('#', filled)}{new string('.', BarWidth - filled)}] {fraction * 100,3:F0}%  {value.BytesDone / MiB:F1}/{value.TotalBytes / MiB:F1} MiB  {rate:F1} MiB/s");
    }
}
