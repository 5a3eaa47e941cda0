using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace ModelSeal.Benchmarks;

/// <summary>
/// Plaintext throughput in MB/s (10^6 bytes per second): the model's length (the <see cref="ModelSize"/> parameter)
/// divided by the mean time of one operation.
/// </summary>
internal sealed class ThroughputColumn : IColumn
{
    public static readonly ThroughputColumn Instance = new();

    public string Id => nameof(ThroughputColumn);

    public string ColumnName => "MB/s";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => "Model (plaintext) bytes per second of Mean, in MB/s (10^6 bytes/s)";

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, summary.Style);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        ModelSize? size = benchmarkCase.Parameters.Items.Select(p => p.Value).OfType<ModelSize>().Cast<ModelSize?>().FirstOrDefault();
        double? meanNs = summary[benchmarkCase]?.ResultStatistics?.Mean;
        if (size is null || meanNs is not > 0)
        {
            return "NA";
        }

        double megabytesPerSecond = ModelCatalog.PlaintextLength(size.Value) / meanNs.Value * 1e9 / 1e6;
        return megabytesPerSecond.ToString("N0", style.CultureInfo ?? CultureInfo.InvariantCulture);
    }

    public override string ToString() => ColumnName;
}

/// <summary>The configuration every benchmark class here uses: allocations and throughput.</summary>
public sealed class BenchmarkConfig : ManualConfig
{
    public BenchmarkConfig()
    {
        AddDiagnoser(MemoryDiagnoser.Default);
        AddColumn(ThroughputColumn.Instance);
    }
}
