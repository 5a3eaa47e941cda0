using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;

namespace ModelSeal.Benchmarks;

/// <summary>
/// The configuration of benchmarks whose work is not proportional to the model's length (random access, HPKE):
/// allocations, and no MB/s column.
/// </summary>
public sealed class OperationConfig : ManualConfig
{
    public OperationConfig()
    {
        AddDiagnoser(MemoryDiagnoser.Default);
    }
}
