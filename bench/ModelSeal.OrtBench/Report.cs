using System.Globalization;
using System.Text;

namespace ModelSeal.OrtBench;

/// <summary>The markdown report: conditions, the main table, the diagnostic breakdown.</summary>
internal static class Report
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static string Write(
        IReadOnlyList<BenchModel> models,
        IReadOnlyList<(BenchModel Model, LoadMode Mode)> cells,
        IReadOnlyDictionary<(BenchModel Model, LoadMode Mode), List<Sample>> samples,
        int runs,
        string loadBefore,
        string loadAfter,
        TimeSpan wall,
        string ortVersion)
    {
        var md = new StringBuilder();
        md.AppendLine("# ONNX Runtime session creation: plaintext vs sealed").AppendLine();
        md.AppendLine(Inv, $"- {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} logical processors, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}, ONNX Runtime {ortVersion}.");
        md.AppendLine(Inv, $"- {runs} runs per (model, mode), interleaved (every cell once per run, shuffled order), each in a fresh process; page cache warm. Load average {loadBefore} before, {loadAfter} after; {wall.TotalSeconds:F0} s in all.");
        md.AppendLine("- Time: wall time of the whole load (reading or decrypting the file included; ONNX Runtime's environment and the `SessionOptions` are created before the stopwatch starts, in every mode). Median, then min–max.");
        md.AppendLine("- Peak RSS: VmHWM after the session exists (process total). Load peak: VmHWM − VmRSS just before the load, with VmHWM reset at that point (`/proc/self/clear_refs`). Extra vs bytes: load peak minus the `bytes` mode's load peak for the same model (medians).");
        if (samples.Values.SelectMany(s => s).Any(s => !s.PeakReset))
        {
            md.AppendLine("- **Warning**: the kernel refused to reset VmHWM in some children; their load peak includes the process's earlier peak.");
        }

        md.AppendLine();
        md.AppendLine("| model | size | mode | time (median) | min–max | × path | peak RSS | load peak | extra vs bytes |");
        md.AppendLine("|---|---:|---|---:|---:|---:|---:|---:|---:|");
        foreach (BenchModel model in models)
        {
            List<Sample> path = samples[(model, LoadMode.Path)];
            samples.TryGetValue((model, LoadMode.Bytes), out List<Sample>? bytes);
            foreach ((BenchModel _, LoadMode mode) in cells.Where(c => c.Model == model && c.Mode.Main))
            {
                List<Sample> s = samples[(model, mode)];
                double time = Median(s.Select(x => x.TotalMs));
                double ratio = time / Median(path.Select(x => x.TotalMs));
                double loadPeak = Median(s.Select(x => (double)x.LoadPeakKiB));
                string extra = bytes is null ? "–" : MiB(loadPeak - Median(bytes.Select(x => (double)x.LoadPeakKiB)), signed: true);
                md.AppendLine(Inv, $"| {model.Name} | {Size(model.Bytes)} | {mode.Name} | {Ms(time)} | {Ms(s.Min(x => x.TotalMs))}–{Ms(s.Max(x => x.TotalMs))} | {ratio:F2}× | {MiB(Median(s.Select(x => (double)x.PeakKiB)))} | {MiB(loadPeak)} | {extra} |");
            }
        }

        md.AppendLine();
        md.AppendLine("## Breakdown").AppendLine();
        md.AppendLine("Medians. Phases are timed inside the load (`read`: `File.ReadAllBytes`; `key`: `KeyFile.Read`; `decrypt`: `SealedModel.DecryptAsync` from the file; `session`: the `InferenceSession` constructor; `zero`: `DecryptedModel.Dispose`), except `warmup` and `first-load`, which run before the measurement starts. JIT: `System.Runtime.JitInfo` compilation time and methods compiled during the load, all threads (background tier-1 recompilation included). Threads: OS threads added by the load. RSS: `warmup` = RSS added by the warm-up (before the measurement); `decrypted` = RSS over the pre-load RSS once decryption is done (plaintext buffer, batch buffers, OpenSSL, JIT).").AppendLine();
        md.AppendLine("| model | mode | time | phases | JIT ms (methods) | threads | RSS marks | load peak |");
        md.AppendLine("|---|---|---:|---|---:|---:|---|---:|");
        foreach ((BenchModel model, LoadMode mode) in cells)
        {
            List<Sample> s = samples[(model, mode)];
            string phases = string.Join(", ", s[0].Phases.Keys.Select(k => $"{k} {Ms(Median(s.Select(x => x.Phases[k])))}"));
            string marks = string.Join(", ", s[0].Memory.Keys.Select(k => $"{k} {MiB(Median(s.Select(x => x.Memory[k])), signed: true)}"));
            md.AppendLine(Inv, $"| {model.Name} | {mode.Name} | {Ms(Median(s.Select(x => x.TotalMs)))} | {(phases.Length == 0 ? "–" : phases)} | {Median(s.Select(x => x.JitMs)):F1} ({Median(s.Select(x => (double)x.JitMethods)):F0}) | +{Median(s.Select(x => (double)(x.ThreadsAfter - x.ThreadsBefore))):F0} | {(marks.Length == 0 ? "–" : marks)} | {MiB(Median(s.Select(x => (double)x.LoadPeakKiB)))} |");
        }

        md.AppendLine();
        md.AppendLine("Modes:").AppendLine();
        foreach (LoadMode mode in cells.Select(c => c.Mode).Distinct())
        {
            md.AppendLine(Inv, $"- `{mode.Name}`: {mode.Description}");
        }

        if (!models.Any(m => m.IsOrt))
        {
            md.AppendLine().AppendLine("No `.ort` model was measured (none ships in tests/models), so there is no zero-copy (`sealed-zc`) row; pass one with `--model PATH.ort`.");
        }

        return md.ToString();
    }

    private static double Median(IEnumerable<double> values)
    {
        double[] sorted = [.. values.Order()];
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    private static string Ms(double ms) => ms < 10 ? ms.ToString("F2", Inv) + " ms" : ms.ToString("F1", Inv) + " ms";

    private static string MiB(double kib, bool signed = false) =>
        (signed && kib >= 0 ? "+" : string.Empty) + (kib / 1024).ToString("F1", Inv) + " MiB";

    private static string Size(long bytes) => bytes >= 1_000_000
        ? (bytes / 1e6).ToString("F1", Inv) + " MB"
        : (bytes / 1e3).ToString("F0", Inv) + " KB";
}
