using System.Text.Json.Serialization;

namespace ModelSeal.Cli.Bench;

/// <summary>The --json result of <c>bench</c>: times in milliseconds, speeds in MB/s (10^6 bytes/s).</summary>
internal sealed record BenchResult(
    string Machine,
    int Threads,
    int Runs,
    int ColdRuns,
    double? OpenSslOneCoreMBps,
    double? OpenSslAllCoresMBps,
    double? OpenSslDecryptOneCoreMBps,
    double? OpenSslDecryptAllCoresMBps,
    IReadOnlyList<BenchResultRow> Models)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "bench";
}

/// <summary>One model of <see cref="BenchResult"/>.</summary>
internal sealed record BenchResultRow(
    string Name,
    long Bytes,
    double? PaperDecryptMs,
    double EncryptMs,
    double Decrypt1Ms,
    double DecryptNMs,
    double WarmLoadMs,
    double WarmReadMs,
    ColdRow? Cold);

/// <summary>Source-generated serialization of <see cref="BenchResult"/> (as <see cref="CliJsonContext"/>).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(BenchResult))]
internal sealed partial class BenchJsonContext : JsonSerializerContext;
