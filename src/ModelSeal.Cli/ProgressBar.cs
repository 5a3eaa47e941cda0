using System.Globalization;

namespace ModelSeal.Cli;

/// <summary>
/// A one-line progress bar on standard error, redrawn in place with <c>\r</c> at most ten times a second and erased
/// when disposed. It fits the terminal's width (read at every redraw) and never wraps; it shows the time remaining
/// once it can estimate it. Thread-safe: the library reports from worker threads.
/// </summary>
internal sealed class ProgressBar : IProgress<ModelSealProgress>, IDisposable
{
    /// <summary>The width assumed when the terminal's cannot be told.</summary>
    public const int DefaultWidth = 80;

    private const int MinBar = 10;
    private const int MaxBar = 30;
    private const double MiB = 1024 * 1024;
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    /// <summary>Before this much time the rate says little about the rest: no estimate yet.</summary>
    private static readonly TimeSpan EstimateAfter = TimeSpan.FromSeconds(1);

    private readonly TextWriter _writer;
    private readonly string _label;
    private readonly TimeProvider _time;
    private readonly Func<int?> _width;
    private readonly long _start;
    private readonly Lock _lock = new();
    private long _lastDraw;
    private int _lastLength;
    private bool _drawn;
    private bool _closed;

    private ProgressBar(TextWriter writer, string label, TimeProvider time, Func<int?> width)
    {
        _writer = writer;
        _label = label;
        _time = time;
        _width = width;
        _start = time.GetTimestamp();
    }

    /// <summary>A progress bar when standard error is interactive and the work is large enough, else null (silence).</summary>
    public static ProgressBar? Create(CliContext context, string label, long totalBytes) =>
        context.Interactive && totalBytes > context.ProgressThreshold ? new ProgressBar(context.Error, label, context.Time, context.TerminalWidth) : null;

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
            int width = Width();
            string line = Render(_label, width, value.BytesDone, value.TotalBytes, _time.GetElapsedTime(_start, now));

            // Blank what is left of a longer earlier line, but never up to the last column (the window may have shrunk).
            _writer.Write("\r" + line.PadRight(Math.Min(_lastLength, width - 1)));
            _writer.Flush();
            _lastLength = line.Length;
        }
    }

    /// <summary>Erases the bar.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (!_closed && _drawn)
            {
                _writer.Write("\r" + new string(' ', Math.Min(_lastLength, Width() - 1)) + "\r");
                _writer.Flush();
            }

            _closed = true;
        }
    }

    /// <summary>
    /// The bar's line for a terminal <paramref name="width"/> columns wide: shorter than the width (a character in the
    /// last column makes some terminals wrap), dropping the rate, then the sizes, then the bar itself as space runs out.
    /// The time remaining is shown once <see cref="EstimateAfter"/> has passed and some bytes are done.
    /// </summary>
    internal static string Render(string label, int width, long done, long total, TimeSpan elapsed)
    {
        int room = Math.Max(width, 2) - 1;
        double fraction = total <= 0 ? 1 : Math.Clamp((double)done / total, 0, 1);
        string percent = string.Create(CultureInfo.InvariantCulture, $"{fraction * 100,3:F0}%");
        string sizes = string.Create(CultureInfo.InvariantCulture, $"{done / MiB:F1}/{total / MiB:F1} MiB");
        string? rate = elapsed > TimeSpan.Zero ? string.Create(CultureInfo.InvariantCulture, $"{done / MiB / elapsed.TotalSeconds:F1} MiB/s") : null;
        string? eta = Remaining(done, total, elapsed) is { } remaining ? "ETA " + Clock(remaining) : null;
        string?[][] layouts = [[percent, sizes, rate, eta], [percent, sizes, eta], [percent, eta], [percent]];

        foreach (string?[] layout in layouts)
        {
            string tail = string.Join("  ", layout.Where(p => p is not null));
            int bar = Math.Min(MaxBar, room - label.Length - tail.Length - 4); // "label [" + bar + "] " + tail
            if (bar >= MinBar)
            {
                int filled = (int)(fraction * bar);
                return $"{label} [{new string('#', filled)}{new string('.', bar - filled)}] {tail}";
            }
        }

        foreach (string?[] layout in layouts)
        {
            string line = label + " " + string.Join("  ", layout.Where(p => p is not null));
            if (line.Length <= room)
            {
                return line;
            }
        }

        string shortest = label + " " + percent;
        return shortest.Length <= room ? shortest : percent.Trim()[..Math.Min(room, percent.Trim().Length)];
    }

    /// <summary>The time left at the rate so far (at most 100 days), or null before it can be estimated.</summary>
    internal static TimeSpan? Remaining(long done, long total, TimeSpan elapsed) =>
        done <= 0 || total <= 0 || elapsed < EstimateAfter
            ? null
            : TimeSpan.FromSeconds(Math.Min(elapsed.TotalSeconds * Math.Max(total - done, 0) / done, TimeSpan.FromDays(100).TotalSeconds));

    /// <summary>"42s", "3m05s", "1h02m".</summary>
    private static string Clock(TimeSpan t) =>
        t.TotalSeconds < 60 ? string.Create(CultureInfo.InvariantCulture, $"{(int)Math.Ceiling(t.TotalSeconds)}s")
        : t.TotalHours < 1 ? string.Create(CultureInfo.InvariantCulture, $"{(int)t.TotalMinutes}m{t.Seconds:D2}s")
        : string.Create(CultureInfo.InvariantCulture, $"{(int)t.TotalHours}h{t.Minutes:D2}m");

    private int Width() => _width() is > 0 and var width ? width : DefaultWidth;
}
