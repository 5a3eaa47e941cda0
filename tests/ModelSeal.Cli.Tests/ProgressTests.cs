namespace ModelSeal.Cli.Tests;

public sealed class ProgressTests
{
    [Fact]
    public async Task Interactive_runs_over_the_threshold_draw_a_progress_bar_and_erase_it()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        File.WriteAllBytes(ws["big.bin"], new byte[9 * 1024 * 1024]);

        CliResult encrypt = await Workspace.RunAsync(["encrypt", ws["big.bin"], "--key", key, "--model-id", "big", "--model-version", "1", "--out", ws["big.mseal"]], interactive: true);
        CliResult verify = await Workspace.RunAsync(["verify", ws["big.mseal"], "--key", key], interactive: true);

        foreach (CliResult result in new[] { encrypt, verify })
        {
            Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());
            Assert.StartsWith("\r", result.Stderr, StringComparison.Ordinal);
            Assert.Contains("%", result.Stderr, StringComparison.Ordinal);
            Assert.Contains("/9.0 MiB", result.Stderr, StringComparison.Ordinal);
            Assert.Contains("MiB/s", result.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("\n", result.Stderr, StringComparison.Ordinal);
            string afterLastDraw = result.Stderr[result.Stderr.LastIndexOf('\r', result.Stderr.Length - 2)..];
            Assert.Matches("^\r *\r$", afterLastDraw); // erased at the end
            Assert.Single(result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
    }

    [Fact]
    public async Task Non_interactive_or_small_runs_print_nothing_on_stderr()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        File.WriteAllBytes(ws["big.bin"], new byte[9 * 1024 * 1024]);

        CliResult redirected = await Workspace.RunAsync(["encrypt", ws["big.bin"], "--key", key, "--model-id", "big", "--model-version", "1", "--out", ws["big.mseal"]], interactive: false);
        CliResult small = await Workspace.RunAsync(["encrypt", RepoPaths.SampleModel, "--key", key, "--model-id", "s", "--model-version", "1", "--out", ws["s.mseal"]], interactive: true);

        Assert.Equal(ExitCodes.Success, redirected.ExitCode);
        Assert.Equal(string.Empty, redirected.Stderr);
        Assert.Equal(ExitCodes.Success, small.ExitCode);
        Assert.Equal(string.Empty, small.Stderr);
    }

    [Fact]
    public void The_bar_is_throttled_to_ten_updates_a_second()
    {
        var clock = new ManualClock();
        using var stderr = new StringWriter();
        var context = new CliContext(TextWriter.Null, stderr, Interactive: true) { Time = clock, ProgressThreshold = 0 };
        ProgressBar bar = ProgressBar.Create(context, "testing", 100)!;

        bar.Report(new ModelSealProgress(10, 100));
        clock.Advance(TimeSpan.FromMilliseconds(50));
        bar.Report(new ModelSealProgress(20, 100)); // too soon: skipped
        clock.Advance(TimeSpan.FromMilliseconds(60));
        bar.Report(new ModelSealProgress(100, 100));
        bar.Dispose();
        bar.Report(new ModelSealProgress(100, 100)); // after erasing: ignored

        string[] draws = stderr.ToString().Split('\r', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, draws.Length);
        Assert.Contains(" 10%", draws[0], StringComparison.Ordinal);
        Assert.Contains("100%", draws[1], StringComparison.Ordinal);
        Assert.Contains("[########################]", draws[1], StringComparison.Ordinal);
        Assert.True(string.IsNullOrWhiteSpace(draws[2]));
    }

    private sealed class ManualClock : TimeProvider
    {
        private long _ticks = 1_000_000;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }
}
