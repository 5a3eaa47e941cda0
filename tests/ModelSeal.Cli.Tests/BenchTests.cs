using ModelSeal.Cli.Bench;

namespace ModelSeal.Cli.Tests;

/// <summary>
/// `modelseal bench`: the measurements run and decrypt correctly (fresh processes included) and the report holds every
/// row. Only shapes are checked here: performance goals live in bench/, never in tests.
/// </summary>
public sealed class BenchTests
{
    [Fact]
    public async Task The_suite_measures_a_model_in_process_and_in_fresh_processes()
    {
        var settings = new BenchSettings(Runs: 1, ColdRuns: 1, Threads: 2, OpenSslSeconds: 0);
        using var log = new StringWriter();
        var suite = new BenchSuite(settings, new CliContext(TextWriter.Null, TextWriter.Null, false).SelfCommand, log);
        using var work = new Workspace();
        var model = new BenchModel("random 0.3 MiB", BenchSuite.RandomModel(0.3, seed: 7), PaperDecryptMs: 12.5);

        BenchRow row = await suite.MeasureAsync(model, work.Directory, TestContext.Current.CancellationToken);

        Assert.All(new[] { row.EncryptMs, row.Decrypt1Ms, row.DecryptNMs, row.WarmLoadMs, row.WarmReadMs }, ms => Assert.True(ms > 0));
        Assert.NotNull(row.Cold);
        Assert.True(row.Cold.LoadMs > 0 && row.Cold.ReadMs > 0 && row.Cold.ProcessMs > row.Cold.LoadMs);
        Assert.Empty(System.IO.Directory.GetFiles(work.Directory)); // the temporary model, sealed file and key are gone

        string report = BenchReport.Format([row], new OpenSslCeiling(4000, 8000, 4100, 8200), settings);
        Assert.Contains("| random 0.3 MiB | 0.3 | 12.5 |", report, StringComparison.Ordinal);
        Assert.Contains("| 1 core | 4,000 | 4,100 |", report, StringComparison.Ordinal);
        Assert.Contains("| 2 cores | 8,000 | 8,200 |", report, StringComparison.Ordinal);

        BenchResult json = BenchReport.ToJson([row], new OpenSslCeiling(4000, null, 4100, null), settings);
        Assert.Equal(model.Plaintext.Length, Assert.Single(json.Models).Bytes);
        Assert.Equal(row.Cold, json.Models[0].Cold);
        Assert.Null(json.OpenSslAllCoresMBps);
        Assert.Equal(4100, json.OpenSslDecryptOneCoreMBps);
    }

    [Theory]
    [InlineData("AES-256-GCM    4206206.98k", 4206.20698)]
    [InlineData("type          16384 bytes\nAES-256-GCM     1000.00k\nAES-256-GCM    8443000.00k\n", 8443.0)]
    [InlineData("evp            8443000.00k", 8443.0)]
    [InlineData("Invalid command 'speed'", null)]
    public void OpenSsl_speed_output_is_read_from_its_last_line(string output, double? expected)
    {
        double? parsed = BenchSuite.ParseOpenSslSpeed(output);
        Assert.Equal(expected is null, parsed is null);
        if (expected is { } value)
        {
            Assert.Equal(value, parsed!.Value, 3);
        }
    }

    [Theory]
    [InlineData("--threads", "0", "--threads must be between 1 and 64.")]
    [InlineData("--model", "no-such-model.onnx", "no-such-model.onnx")]
    public async Task Bad_arguments_are_refused_before_anything_is_measured(string option, string value, string expected)
    {
        CliResult result = await Workspace.RunAsync("bench", option, value);
        Assert.NotEqual(ExitCodes.Success, result.ExitCode);
        Assert.Contains(expected, result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("measuring", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_internal_child_verb_refuses_other_arguments()
    {
        CliResult result = await Workspace.RunAsync(BenchChild.Verb, "something");
        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("internal to 'modelseal bench'", result.Stderr, StringComparison.Ordinal);
    }
}
