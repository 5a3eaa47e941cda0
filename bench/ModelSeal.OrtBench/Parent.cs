using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;

namespace ModelSeal.OrtBench;

/// <summary>A model to load: its plaintext file and the sealed copy made up front.</summary>
internal sealed record BenchModel(string Name, string PlainPath, string SealedPath, long Bytes)
{
    public bool IsOrt => PlainPath.EndsWith(".ort", StringComparison.OrdinalIgnoreCase);
}

/// <summary>One child process's report.</summary>
internal sealed record Sample(double TotalMs, long RssBeforeKiB, long PeakKiB, long RssAfterKiB, int ThreadsBefore, int ThreadsAfter, double JitMs, long JitMethods, bool PeakReset, IReadOnlyDictionary<string, double> Phases, IReadOnlyDictionary<string, double> Memory)
{
    /// <summary>Peak RSS during the load over RSS before it (VmHWM was reset just before the load).</summary>
    public long LoadPeakKiB => PeakKiB - RssBeforeKiB;

    public static Sample Parse(string line)
    {
        var values = line[Child.ResultPrefix.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);
        double D(string k) => double.Parse(values[k], CultureInfo.InvariantCulture);
        long L(string k) => long.Parse(values[k], CultureInfo.InvariantCulture);
        var phases = values.Where(p => p.Key.StartsWith("phase.", StringComparison.Ordinal))
            .ToDictionary(p => p.Key["phase.".Length..], p => double.Parse(p.Value, CultureInfo.InvariantCulture), StringComparer.Ordinal);
        var memory = values.Where(p => p.Key.StartsWith("rss.", StringComparison.Ordinal))
            .ToDictionary(p => p.Key["rss.".Length..], p => double.Parse(p.Value, CultureInfo.InvariantCulture), StringComparer.Ordinal);
        return new Sample(D("totalMs"), L("rssBeforeKiB"), L("peakKiB"), L("rssAfterKiB"), (int)L("threadsBefore"), (int)L("threadsAfter"), D("jitMs"), L("jitMethods"), values["peakReset"] == "True", phases, memory);
    }
}

/// <summary>Seals the models, launches the child processes interleaved, and writes the markdown report.</summary>
internal static class Parent
{
    private const string Usage = "usage: ModelSeal.OrtBench [--runs N] [--out FILE.md] [--main-only] [--modes M1,M2,...] [--model PATH]... [--keep DIR]";

    public static async Task<int> RunAsync(string[] args)
    {
        int runs = 7;
        string? outPath = null;
        bool mainOnly = false;
        string? keepDirectory = null;
        HashSet<string>? onlyModes = null;
        var extraModels = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--runs" when i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out runs):
                    i++;
                    break;
                case "--out" when i + 1 < args.Length:
                    outPath = Path.GetFullPath(args[++i]);
                    break;
                case "--main-only":
                    mainOnly = true;
                    break;
                case "--modes" when i + 1 < args.Length:
                    onlyModes = [.. args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
                    break;
                case "--keep" when i + 1 < args.Length:
                    keepDirectory = Path.GetFullPath(args[++i]);
                    break;
                case "--model" when i + 1 < args.Length:
                    extraModels.Add(Path.GetFullPath(args[++i]));
                    break;
                default:
                    await Console.Error.WriteLineAsync(Usage);
                    return 2;
            }
        }

        string root = FindRoot();
        var plainModels = new List<string>
        {
            Path.Combine(root, "samples", "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx"),
            Path.Combine(root, "tests", "models", "ch_PP-OCRv4_det_infer.onnx"),
            Path.Combine(root, "tests", "models", "silero_vad.onnx"),
            Path.Combine(root, "tests", "models", "melspectrogram.onnx"),
        };
        // Any .ort model shipped with the repository is measured zero-copy too (none ships today; pass one with --model).
        plainModels.AddRange(Directory.EnumerateFiles(Path.Combine(root, "tests", "models"), "*.ort").Order(StringComparer.Ordinal));
        plainModels.AddRange(extraModels);

        // --keep DIR: seal into DIR and keep it (key file included), to rerun single children by hand.
        DirectoryInfo temp = keepDirectory is null ? Directory.CreateTempSubdirectory("modelseal-ortbench-") : Directory.CreateDirectory(keepDirectory);
        try
        {
            string keyPath = Path.Combine(temp.FullName, "bench.key");
            List<BenchModel> models = await SealAllAsync(plainModels, temp.FullName, keyPath);
            var cells = new List<(BenchModel Model, LoadMode Mode)>();
            foreach (BenchModel model in models)
            {
                // path is always measured: it is the reference for the ratio.
                cells.AddRange(LoadMode.All
                    .Where(m => m.AppliesTo(model.IsOrt) && (m.Main || !mainOnly) && (onlyModes is null || onlyModes.Contains(m.Name) || m == LoadMode.Path))
                    .Select(m => (model, m)));
            }

            // Page cache warm for every file: the children measure a cold process, not a cold disk.
            foreach (string file in models.SelectMany(m => new[] { m.PlainPath, m.SealedPath }))
            {
                _ = await File.ReadAllBytesAsync(file);
            }

            if (runs == 0)
            {
                // Prepare only (with --keep DIR): print the child command lines.
                foreach ((BenchModel model, LoadMode mode) in cells)
                {
                    Console.WriteLine($"{Environment.ProcessPath} --child {mode.Name} {model.PlainPath} {model.SealedPath} {keyPath}");
                }

                return 0;
            }

            string loadBefore = LoadAverage();
            var samples = cells.ToDictionary(c => c, _ => new List<Sample>());
            var random = new Random(20_251_123);
            var wall = Stopwatch.StartNew();
            for (int run = 1; run <= runs; run++)
            {
                // Interleaved: every (model, mode) once per run, in a new shuffled order each run.
                (BenchModel Model, LoadMode Mode)[] order = [.. cells];
                random.Shuffle(order);
                foreach ((BenchModel model, LoadMode mode) in order)
                {
                    samples[(model, mode)].Add(await RunChildAsync(mode, model, keyPath));
                }

                Console.Error.WriteLine($"run {run}/{runs} done ({wall.Elapsed.TotalSeconds:F0} s)");
            }

            string report = Report.Write(models, cells, samples, runs, loadBefore, LoadAverage(), wall.Elapsed, OrtEnv.Instance().GetVersionString());
            Console.WriteLine(report);
            if (outPath is not null)
            {
                await File.WriteAllTextAsync(outPath, report);
                Console.Error.WriteLine($"written: {outPath}");
            }

            return 0;
        }
        finally
        {
            if (keepDirectory is null)
            {
                temp.Delete(recursive: true);
            }
        }
    }

    private static async Task<List<BenchModel>> SealAllAsync(List<string> plainModels, string directory, string keyPath)
    {
        using ModelKey key = ModelKey.Generate("ortbench");
        KeyFile.Write(keyPath, key);
        var models = new List<BenchModel>();
        foreach (string plain in plainModels)
        {
            string name = Path.GetFileName(plain);
            string sealedPath = Path.Combine(directory, name + SealedModel.FileExtension);
            await using (FileStream source = File.OpenRead(plain))
            await using (FileStream destination = File.Create(sealedPath))
            {
                string id = new([.. Path.GetFileNameWithoutExtension(plain).Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '-')]);
                await SealedModel.SealAsync(source, destination, key, new SealOptions { ModelId = id, ModelVersion = "1" });
            }

            models.Add(new BenchModel(name, plain, sealedPath, new FileInfo(plain).Length));
        }

        return models;
    }

    private static async Task<Sample> RunChildAsync(LoadMode mode, BenchModel model, string keyPath)
    {
        var start = new ProcessStartInfo
        {
            FileName = Environment.ProcessPath ?? throw new InvalidOperationException("No process path."),
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (Path.GetFileNameWithoutExtension(start.FileName) == "dotnet")
        {
            start.ArgumentList.Add(typeof(Parent).Assembly.Location);
        }

        foreach (string arg in new[] { "--child", mode.Name, model.PlainPath, model.SealedPath, keyPath })
        {
            start.ArgumentList.Add(arg);
        }

        using Process process = Process.Start(start) ?? throw new InvalidOperationException("Could not start the child process.");
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        string output = await stdout;
        string errors = await stderr;
        string? line = output.Split('\n').FirstOrDefault(l => l.StartsWith(Child.ResultPrefix, StringComparison.Ordinal));
        return process.ExitCode == 0 && line is not null
            ? Sample.Parse(line.TrimEnd('\r'))
            : throw new InvalidOperationException($"The child for {mode.Name} {model.Name} failed (exit code {process.ExitCode}):\n{output}\n{errors}");
    }

    private static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "n/a";
        }
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ModelSeal.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Cannot find the repository root (the folder holding ModelSeal.slnx) above " + AppContext.BaseDirectory);
    }
}
