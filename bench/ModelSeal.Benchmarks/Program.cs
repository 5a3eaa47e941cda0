using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;

// Usage: dotnet run -c Release --project bench/ModelSeal.Benchmarks -- [--quick] [BenchmarkDotNet options, e.g. --filter '*']
// --quick: a short in-process job (1 warmup, 3 iterations of ~200 ms, no generated project to build) for a CI smoke run;
// runs everything unless --filter is given. Its numbers are rough: use the default job for real measurements.
const string QuickFlag = "--quick";
bool quick = args.Contains(QuickFlag, StringComparer.Ordinal);
string[] switcherArgs = [.. args.Where(a => !string.Equals(a, QuickFlag, StringComparison.Ordinal))];

IConfig? config = null;
if (quick)
{
    config = DefaultConfig.Instance.AddJob(
        Job.ShortRun.WithId("Quick").WithLaunchCount(1).WithWarmupCount(1).WithIterationCount(3)
            .WithIterationTime(TimeInterval.FromMilliseconds(200)).WithToolchain(InProcessEmitToolchain.Instance).AsDefault());
    if (!switcherArgs.Any(a => a == "-f" || a.StartsWith("--filter", StringComparison.Ordinal)))
    {
        switcherArgs = [.. switcherArgs, "--filter", "*"];
    }
}

IEnumerable<Summary> summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(switcherArgs, config);
bool failed = summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success));
return failed ? 1 : 0;
