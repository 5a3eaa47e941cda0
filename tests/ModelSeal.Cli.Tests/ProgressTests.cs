namespace ModelSeal.Cli.Tests;

public sealed class ProgressTests
{
    [Fact]
    public async Task Interactive_runs_over_the_threshold_draw_a_progress_bar_and_erase_it()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        File.WriteAllBytes(ws["big.bin"], new byte[9 * 1024 * 1024]);

        static CliContext Wide(CliContext context) => context with { TerminalWidth = () => 100 };
        CliResult encrypt = await Workspace.RunAsync(["encrypt", ws["big.bin"], "--key", key, "--model-id", "big", "--model-version", "1", "--out", ws["big.mseal"]], interactive: true, Wide);
        CliResult verify = await Workspace.RunAsync(["verify", ws["big.mseal"], "--key", key], interactive: true, Wide);

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
        var context = new CliContext(TextWriter.Null, stderr, Interactive: true) { Time = clock, ProgressThreshold = 0, TerminalWidth = () => 80 };
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
        Assert.Matches(@"\[#{30}\]", draws[1]);
        Assert.True(string.IsNullOrWhiteSpace(draws[2]));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(10)]
    [InlineData(20)]
    [InlineData(40)]
    [InlineData(60)]
    [InlineData(80)]
    [InlineData(120)]
    [InlineData(300)]
    public void The_line_is_always_narrower_than_the_terminal(int width)
    {
        long total = 300L * 1024 * 1024 * 1024; // 300 GiB: the longest sizes
        foreach (long done in new[] { 0L, 1, total / 3, total })
        {
            foreach (TimeSpan elapsed in new[] { TimeSpan.Zero, TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(7), TimeSpan.FromHours(30) })
            {
                string line = ProgressBar.Render("decrypting", width, done, total, elapsed);
                Assert.True(line.Length < Math.Max(width, 2), $"{line.Length} characters at {width} columns: {line}");
                Assert.DoesNotContain('\n', line);
                Assert.DoesNotContain('\r', line);
            }
        }
    }

    [Fact]
    public void At_40_columns_the_bar_keeps_the_percentage_and_the_time_remaining()
    {
        string line = ProgressBar.Render("decrypting", 40, 100L * 1024 * 1024, 300L * 1024 * 1024, TimeSpan.FromSeconds(10));

        Assert.Equal("decrypting [####........]  33%  ETA 20s", line);
        Assert.Equal(39, line.Length);
    }

    [Fact]
    public void A_wide_terminal_shows_everything_and_caps_the_bar()
    {
        string line = ProgressBar.Render("sealing", 200, 150L * 1024 * 1024, 300L * 1024 * 1024, TimeSpan.FromSeconds(90));

        Assert.Equal("sealing [###############...............]  50%  150.0/300.0 MiB  1.7 MiB/s  ETA 1m30s", line);
    }

    [Fact]
    public void The_time_remaining_appears_once_it_can_be_estimated()
    {
        long total = 100L * 1024 * 1024;

        Assert.DoesNotContain("ETA", ProgressBar.Render("verifying", 100, 0, total, TimeSpan.FromSeconds(5)), StringComparison.Ordinal);
        Assert.DoesNotContain("ETA", ProgressBar.Render("verifying", 100, total / 2, total, TimeSpan.FromMilliseconds(500)), StringComparison.Ordinal);
        Assert.EndsWith("ETA 2h00m", ProgressBar.Render("verifying", 100, total / 4, total, TimeSpan.FromMinutes(40)), StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromSeconds(30), ProgressBar.Remaining(done: 1, total: 4, TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public void A_drawn_bar_and_its_erasure_stay_narrower_than_a_40_column_terminal()
    {
        var clock = new ManualClock();
        using var stderr = new StringWriter();
        int width = 80;
        var context = new CliContext(TextWriter.Null, stderr, Interactive: true) { Time = clock, ProgressThreshold = 0, TerminalWidth = () => width };
        ProgressBar bar = ProgressBar.Create(context, "decrypting", 300L * 1024 * 1024)!;

        bar.Report(new ModelSealProgress(1024 * 1024, 300L * 1024 * 1024)); // drawn at 80 columns
        width = 40; // the window shrinks
        clock.Advance(TimeSpan.FromSeconds(2));
        bar.Report(new ModelSealProgress(100L * 1024 * 1024, 300L * 1024 * 1024));
        bar.Dispose();

        string[] draws = stderr.ToString().Split('\r', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, draws.Length);
        Assert.All(draws[1..], d => Assert.True(d.Length < 40, $"{d.Length}: '{d}'"));
        Assert.Contains("ETA", draws[1], StringComparison.Ordinal);
    }

    private sealed class ManualClock : TimeProvider
    {
        private long _ticks = 1_000_000;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }
}
