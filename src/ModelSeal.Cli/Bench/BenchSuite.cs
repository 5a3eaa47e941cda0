using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace ModelSeal.Cli.Bench;

/// <summary>One model to measure: a name, its plaintext, and the paper's phone decryption time where one is known.</summary>
internal sealed record BenchModel(string Name, byte[] Plaintext, double? PaperDecryptMs);

/// <summary>Medians measured for one model, in milliseconds (peaks in KiB).</summary>
internal sealed record BenchRow(BenchModel Model, double EncryptMs, double Decrypt1Ms, double DecryptNMs, double WarmLoadMs, double WarmReadMs, ColdRow? Cold);

/// <summary>Medians over fresh processes: the sealed load and the plaintext read, the one-time runtime start-up, the whole process and peak RSS.</summary>
internal sealed record ColdRow(double LoadMs, double ReadMs, double StartupMs, double ProcessMs, long LoadPeakKiB, long ReadPeakKiB);

/// <summary>
/// <c>openssl speed</c> for AES-256-GCM at 16 KiB in MB/s (10^6 bytes/s), each null where not measured: encryption (the
/// command the performance issue names) and decryption (<c>-decrypt</c>, the operation ModelSeal's loads perform), on
/// one core and on all cores (<c>-multi N</c>).
/// </summary>
internal sealed record OpenSslCeiling(double? Encrypt1, double? EncryptN, double? Decrypt1, double? DecryptN);

/// <summary>How much to measure.</summary>
/// <param name="Runs">In-process repetitions per operation (median reported).</param>
/// <param name="ColdRuns">Fresh processes per model and mode (median reported); 0 skips the cold measurements.</param>
/// <param name="Threads">Threads for the parallel column.</param>
/// <param name="OpenSslSeconds">Seconds per <c>openssl speed</c> run; 0 skips the ceiling.</param>
internal sealed record BenchSettings(int Runs, int ColdRuns, int Threads, int OpenSslSeconds);

/// <summary>
/// The measurements behind <c>modelseal bench</c>: the paper-style table (encryption, warm decryption on 1 and N
/// threads, cold whole-process load against the cost of reading the plaintext into fresh memory) and the AES-256-GCM
/// ceiling from <c>openssl speed</c> on the same machine.
/// </summary>
internal sealed class BenchSuite(BenchSettings settings, IReadOnlyList<string> selfCommand, TextWriter log)
{
    /// <summary>The paper's six model sizes, in MiB, with the one phone figure our brief quotes (Inception V3: 1766 ms).</summary>
    public static readonly (double MiB, double? PaperMs)[] PaperSizes = [(2.5, null), (4.2, null), (11.3, null), (16, null), (17.5, null), (23.9, 1766)];

    /// <summary>Seeded pseudo-random bytes (incompressible, like model weights).</summary>
    public static byte[] RandomModel(double mib, int seed)
    {
        byte[] bytes = new byte[(int)(mib * 1024 * 1024)];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public async Task<BenchRow> MeasureAsync(BenchModel model, string workDirectory, CancellationToken cancellationToken)
    {
        using ModelKey key = ModelKey.Generate("bench");
        var sealedStream = new MemoryStream();
        var sealOptions = new SealOptions { ModelId = "bench", ModelVersion = "1" };
        await SealedModel.SealAsync(new MemoryStream(model.Plaintext, writable: false), sealedStream, key, sealOptions, cancellationToken: cancellationToken).ConfigureAwait(false);
        byte[] sealedBytes = sealedStream.ToArray();
        string plainPath = Path.Combine(workDirectory, "model.bin");
        string sealedPath = Path.Combine(workDirectory, "model.mseal");
        string keyPath = Path.Combine(workDirectory, "bench.key");
        await File.WriteAllBytesAsync(plainPath, model.Plaintext, cancellationToken).ConfigureAwait(false);
        await File.WriteAllBytesAsync(sealedPath, sealedBytes, cancellationToken).ConfigureAwait(false);
        KeyFile.Write(keyPath, key, overwrite: true);
        try
        {
            // Warm, in memory: the work itself, with the destination buffer already faulted in.
            var sink = new MemoryStream(sealedBytes.Length);
            double encrypt = await MedianAsync(async () =>
            {
                sink.SetLength(0);
                await SealedModel.SealAsync(new MemoryStream(model.Plaintext, writable: false), sink, key, sealOptions, cancellationToken: cancellationToken).ConfigureAwait(false);
            }).ConfigureAwait(false);
            byte[] destination = GC.AllocateArray<byte>(model.Plaintext.Length, pinned: true);
            var one = new DecryptOptions { MaxDegreeOfParallelism = 1 };
            var all = new DecryptOptions { MaxDegreeOfParallelism = settings.Threads };
            double decrypt1 = await MedianAsync(() => SealedModel.DecryptAsync(sealedBytes, destination, key, one, cancellationToken)).ConfigureAwait(false);
            double decryptN = await MedianAsync(() => SealedModel.DecryptAsync(sealedBytes, destination, key, all, cancellationToken)).ConfigureAwait(false);
            bool correct = destination.AsSpan().SequenceEqual(model.Plaintext);
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(destination);
            if (!correct)
            {
                throw new CliException($"The benchmark decrypted {model.Name} to different bytes: this is a bug.");
            }

            // Warm process, fresh buffers: load the sealed file into a new buffer, against reading the plaintext file
            // into a new array (File.ReadAllBytes), both from the page cache.
            double warmLoad = await MedianAsync(async () =>
            {
                await using var file = new FileStream(sealedPath, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 4096);
                (await SealedModel.DecryptAsync(file, key, all, cancellationToken: cancellationToken).ConfigureAwait(false)).Dispose();
            }).ConfigureAwait(false);
            double warmRead = await MedianAsync(() => File.ReadAllBytesAsync(plainPath, cancellationToken)).ConfigureAwait(false);
            ColdRow? cold = settings.ColdRuns == 0 ? null : await MeasureColdAsync(plainPath, sealedPath, keyPath, cancellationToken).ConfigureAwait(false);
            return new BenchRow(model, encrypt, decrypt1, decryptN, warmLoad, warmRead, cold);
        }
        finally
        {
            File.Delete(plainPath);
            File.Delete(sealedPath);
            File.Delete(keyPath);
        }
    }

    /// <summary>Each load in a fresh process, alternating with the floor (the same plaintext read into fresh memory).</summary>
    private async Task<ColdRow> MeasureColdAsync(string plainPath, string sealedPath, string keyPath, CancellationToken cancellationToken)
    {
        var reads = new List<ChildResult>();
        var loads = new List<ChildResult>();
        string threads = settings.Threads.ToString(CultureInfo.InvariantCulture);
        for (int run = 0; run < settings.ColdRuns; run++)
        {
            reads.Add(await RunChildAsync([BenchChild.ReadMode, plainPath], cancellationToken).ConfigureAwait(false));
            loads.Add(await RunChildAsync([BenchChild.LoadMode, sealedPath, keyPath, threads], cancellationToken).ConfigureAwait(false));
        }

        return new ColdRow(
            Median(loads, r => r.WorkMs), Median(reads, r => r.WorkMs), Median(loads, r => r.StartupMs), Median(loads, r => r.ProcessMs),
            (long)Median(loads, r => r.PeakKiB), (long)Median(reads, r => r.PeakKiB));
    }

    /// <summary>
    /// <c>openssl speed -elapsed -seconds S -bytes 16384 [-decrypt] [-multi N] -evp aes-256-gcm</c>, or nulls where
    /// OpenSSL is missing or its output unreadable.
    /// </summary>
    public async Task<OpenSslCeiling> MeasureOpenSslAsync(CancellationToken cancellationToken)
    {
        if (settings.OpenSslSeconds == 0)
        {
            return new OpenSslCeiling(null, null, null, null);
        }

        async Task<double?> Speed(bool decrypt, int processes)
        {
            List<string> arguments = ["speed", "-elapsed", "-seconds", settings.OpenSslSeconds.ToString(CultureInfo.InvariantCulture), "-bytes", "16384"];
            if (decrypt)
            {
                arguments.Add("-decrypt");
            }

            if (processes > 1)
            {
                arguments.AddRange(["-multi", processes.ToString(CultureInfo.InvariantCulture)]);
            }

            arguments.AddRange(["-evp", "aes-256-gcm"]);
            return await OpenSslSpeedAsync(arguments, cancellationToken).ConfigureAwait(false);
        }

        double? encrypt1 = await Speed(decrypt: false, 1).ConfigureAwait(false);
        if (encrypt1 is null)
        {
            return new OpenSslCeiling(null, null, null, null);
        }

        return new OpenSslCeiling(encrypt1, await Speed(false, settings.Threads).ConfigureAwait(false), await Speed(true, 1).ConfigureAwait(false), await Speed(true, settings.Threads).ConfigureAwait(false));
    }

    /// <summary>The figure on the last <c>AES-256-GCM</c> line, in thousands of bytes per second, as MB/s.</summary>
    internal static double? ParseOpenSslSpeed(string output)
    {
        string? line = output.Split('\n').LastOrDefault(l => l.StartsWith("AES-256-GCM", StringComparison.OrdinalIgnoreCase) || l.StartsWith("evp", StringComparison.Ordinal));
        string? figure = line?.Split(' ', StringSplitOptions.RemoveEmptyEntries).LastOrDefault();
        return figure is not null && figure.EndsWith('k')
            && double.TryParse(figure.AsSpan(0, figure.Length - 1), NumberStyles.Float, CultureInfo.InvariantCulture, out double thousands)
            ? thousands / 1000
            : null;
    }

    private async Task<double?> OpenSslSpeedAsync(List<string> arguments, CancellationToken cancellationToken)
    {
        try
        {
            (int exit, string output, _) = await RunAsync("openssl", arguments, cancellationToken).ConfigureAwait(false);
            return exit == 0 ? ParseOpenSslSpeed(output) : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            log.WriteLine("openssl is not on PATH: the AES-256-GCM ceiling is not measured.");
            return null;
        }
    }

    private async Task<double> MedianAsync(Func<Task> operation)
    {
        await operation().ConfigureAwait(false); // warm-up: JIT, buffers
        var times = new List<double>(settings.Runs);
        for (int i = 0; i < settings.Runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            await operation().ConfigureAwait(false);
            times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }

        return Median(times);
    }

    private static double Median(List<ChildResult> results, Func<ChildResult, double> value) => Median(results.Select(value).ToList());

    internal static double Median(List<double> values)
    {
        values.Sort();
        int middle = values.Count / 2;
        return values.Count % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
    }

    private sealed record ChildResult(double WorkMs, double StartupMs, double ProcessMs, long PeakKiB);

    private async Task<ChildResult> RunChildAsync(string[] arguments, CancellationToken cancellationToken)
    {
        long start = Stopwatch.GetTimestamp();
        (int exit, string output, string error) = await RunAsync(selfCommand[0], [.. selfCommand.Skip(1), BenchChild.Verb, .. arguments], cancellationToken).ConfigureAwait(false);
        double processMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        string[] parts = output.Trim().Split(' ');
        if (exit != 0 || parts.Length != 3
            || !double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double work)
            || !double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double startup)
            || !long.TryParse(parts[2], NumberStyles.Integer, CultureInfo.InvariantCulture, out long peak))
        {
            throw new CliException($"A benchmark process failed (exit {exit}): {error.Trim()}");
        }

        return new ChildResult(work, startup, processMs, peak);
    }

    private static async Task<(int Exit, string Output, string Error)> RunAsync(string fileName, IEnumerable<string> arguments, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(start) ?? throw new CliException($"Cannot start {fileName}.");
        Task<string> output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        Task<string> error = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await output.ConfigureAwait(false), await error.ConfigureAwait(false));
    }
}

/// <summary>Formats the results as Markdown tables (readable as plain text too).</summary>
internal static class BenchReport
{
    public static string Format(IReadOnlyList<BenchRow> rows, OpenSslCeiling ceiling, BenchSettings settings)
    {
        var text = new StringBuilder();
        string n = settings.Threads.ToString(CultureInfo.InvariantCulture);
        text.AppendLine(CultureInfo.InvariantCulture, $"Machine: {Machine()}.");
        text.AppendLine(CultureInfo.InvariantCulture, $"Medians of {settings.Runs} warm runs and {settings.ColdRuns} fresh processes per model. Times in ms.");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"| model | MiB | paper: phone decrypt | encrypt | decrypt 1 thread | decrypt {n} threads | speedup | whole process, cold |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (BenchRow row in rows)
        {
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {row.Model.Name} | {MiB(row.Model.Plaintext.Length)} | {(row.Model.PaperDecryptMs is { } p ? Ms(p) : "—")} | {Ms(row.EncryptMs)} | {Ms(row.Decrypt1Ms)} | {Ms(row.DecryptNMs)} | {Ratio(row.Decrypt1Ms / row.DecryptNMs)} | {Ms(row.Cold?.ProcessMs ?? double.NaN)} |");
        }

        text.AppendLine();
        text.AppendLine("Against the floor: loading the sealed file into memory vs reading the plaintext file into a fresh array (File.ReadAllBytes).");
        text.AppendLine();
        text.AppendLine("| model | MiB | load, warm process | read, warm process | ratio | load, fresh process | read, fresh process | ratio | + one-time crypto/thread-pool start-up | peak RSS load / read (MiB) |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (BenchRow row in rows)
        {
            ColdRow? c = row.Cold;
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {row.Model.Name} | {MiB(row.Model.Plaintext.Length)} | {Ms(row.WarmLoadMs)} | {Ms(row.WarmReadMs)} | {Ratio(row.WarmLoadMs / row.WarmReadMs)} | {Ms(c?.LoadMs ?? double.NaN)} | {Ms(c?.ReadMs ?? double.NaN)} | {Ratio(c is null ? null : c.LoadMs / c.ReadMs)} | {Ms(c?.StartupMs ?? double.NaN)} | {(c is null ? "—" : $"{MiB(c.LoadPeakKiB * 1024)} / {MiB(c.ReadPeakKiB * 1024)}")} |");
        }

        BenchRow largest = rows.MaxBy(r => r.Model.Plaintext.Length)!;
        double one = MBps(largest.Model.Plaintext.Length, largest.Decrypt1Ms);
        double all = MBps(largest.Model.Plaintext.Length, largest.DecryptNMs);
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"AES-256-GCM ceiling (openssl speed, 16 KiB blocks) against warm decryption of {largest.Model.Name}, MB/s (10^6 bytes/s):");
        text.AppendLine();
        text.AppendLine("| | OpenSSL encrypt | OpenSSL decrypt | ModelSeal decrypt | ratio to encrypt | ratio to decrypt |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|");
        text.AppendLine(CultureInfo.InvariantCulture, $"| 1 core | {Speed(ceiling.Encrypt1)} | {Speed(ceiling.Decrypt1)} | {Speed(one)} | {Ratio(one / ceiling.Encrypt1)} | {Ratio(one / ceiling.Decrypt1)} |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| {n} cores | {Speed(ceiling.EncryptN)} | {Speed(ceiling.DecryptN)} | {Speed(all)} | {Ratio(all / ceiling.EncryptN)} | {Ratio(all / ceiling.DecryptN)} |");
        text.AppendLine();
        text.AppendLine("paper: the published design's figure on an 8-core 2 GHz phone (only the 23.9 MB Inception V3 figure is quoted here).");
        text.AppendLine("decrypt: warm, in memory, into an already-touched buffer. whole process: a fresh process that starts, loads the sealed file into memory and exits.");
        text.AppendLine("load: the sealed file decrypted into a new buffer. read: the plaintext file read into a new array. Fresh process: the work alone, after");
        text.AppendLine("the one-time start-up of .NET's crypto library and thread pool (shown apart: any app pays it once, not per load).");
        return text.ToString();
    }

    public static BenchResult ToJson(IReadOnlyList<BenchRow> rows, OpenSslCeiling ceiling, BenchSettings settings) =>
        new(Machine(), settings.Threads, settings.Runs, settings.ColdRuns, ceiling.Encrypt1, ceiling.EncryptN, ceiling.Decrypt1, ceiling.DecryptN,
            [.. rows.Select(r => new BenchResultRow(r.Model.Name, r.Model.Plaintext.Length, r.Model.PaperDecryptMs, r.EncryptMs, r.Decrypt1Ms, r.DecryptNMs, r.WarmLoadMs, r.WarmReadMs, r.Cold))]);

    private static string Machine() =>
        $"{Environment.ProcessorCount} logical processors, {CpuName()}, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}";

    private static string MiB(long bytes) => (bytes / 1048576.0).ToString("F1", CultureInfo.InvariantCulture);

    private static string Ms(double value) =>
        double.IsNaN(value) ? "—" : value.ToString(value < 10 ? "F2" : value < 100 ? "F1" : "F0", CultureInfo.InvariantCulture);

    private static string Ratio(double? value) => value is { } v && !double.IsNaN(v) ? v.ToString("F2", CultureInfo.InvariantCulture) + "×" : "—";

    private static string Speed(double? value) => value is { } v ? v.ToString("N0", CultureInfo.InvariantCulture) : "—";

    private static double MBps(long bytes, double ms) => bytes / (ms * 1000);

    private static string CpuName()
    {
        const string path = "/proc/cpuinfo";
        string? line = File.Exists(path) ? File.ReadLines(path).FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal)) : null;
        return line is null ? System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString() : line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
    }
}
