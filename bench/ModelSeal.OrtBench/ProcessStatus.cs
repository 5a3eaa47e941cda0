using System.Globalization;

namespace ModelSeal.OrtBench;

/// <summary>Memory and thread counters of the current process from /proc/self/status (Linux), in KiB.</summary>
internal readonly record struct ProcessStatus(long RssKiB, long PeakRssKiB, int Threads)
{
    /// <summary>Reads VmRSS, VmHWM (peak resident set size) and Threads.</summary>
    public static ProcessStatus Read()
    {
        long rss = 0;
        long hwm = 0;
        int threads = 0;
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                rss = ParseKiB(line);
            }
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                hwm = ParseKiB(line);
            }
            else if (line.StartsWith("Threads:", StringComparison.Ordinal))
            {
                threads = int.Parse(line.AsSpan("Threads:".Length).Trim(), CultureInfo.InvariantCulture);
            }
        }

        return new ProcessStatus(rss, hwm, threads);
    }

    /// <summary>
    /// Resets VmHWM to the current RSS (writing 5 to /proc/self/clear_refs, Linux 4.0+), so that the peak read after
    /// the load is the peak of the load alone. Returns false if the kernel refused.
    /// </summary>
    public static bool TryResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static long ParseKiB(string line)
    {
        // "VmRSS:	   13560 kB"
        ReadOnlySpan<char> value = line.AsSpan(line.IndexOf(':', StringComparison.Ordinal) + 1).Trim();
        int space = value.IndexOf(' ');
        return long.Parse(space < 0 ? value : value[..space], CultureInfo.InvariantCulture);
    }
}
