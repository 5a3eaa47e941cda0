namespace ModelSeal.Cli.Tests;

/// <summary>Runs the real built CLI (ModelSeal.Cli.dll, the `modelseal` command) as a child process: checks the Program.Main wiring end to end.</summary>
public sealed class ProcessTests
{
    [Fact]
    public async Task The_built_cli_reports_a_plain_model_as_not_sealed_with_exit_code_3()
    {
        using var process = CliProcess.Start(["inspect", RepoPaths.SampleModel]);

        CliResult result = await process.WaitAsync();

        Assert.True(result.ExitCode == ExitCodes.FormatError, result.ToString());
        Assert.Equal(string.Empty, result.Stdout);
        string[] lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.StartsWith("error: ", lines[0], StringComparison.Ordinal);
        Assert.Contains("is not a sealed model", lines[0], StringComparison.Ordinal);
        Assert.StartsWith("hint: ", lines[1], StringComparison.Ordinal);
        Assert.Equal(2, lines.Length);
    }

    [Theory]
    [InlineData("-")]
    [InlineData("/dev/stdin")]
    public async Task A_sealed_model_on_a_pipe_verifies_inspects_and_decrypts(string input)
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Skip("/dev/stdin and the pipe set-up of this test are Linux's.");
            return;
        }

        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);

        CliResult verified = await RunWithPipeAsync(sealedModel, "verify", input, "--key", key);
        Assert.True(verified.ExitCode == 0, verified.ToString());
        Assert.Contains("every chunk authentic", verified.Stdout, StringComparison.Ordinal);

        CliResult inspected = await RunWithPipeAsync(sealedModel, "inspect", input, "--json");
        Assert.True(inspected.ExitCode == 0, inspected.ToString());
        Assert.Contains($"\"fileLength\":{new FileInfo(sealedModel).Length}", inspected.Stdout, StringComparison.Ordinal);

        CliResult decrypted = await RunWithPipeAsync(sealedModel, "decrypt", input, "--key", key, "--out", ws["piped.onnx"]);
        Assert.True(decrypted.ExitCode == 0, decrypted.ToString());
        Assert.Equal(await File.ReadAllBytesAsync(RepoPaths.SampleModel), await File.ReadAllBytesAsync(ws["piped.onnx"]));

        // Sealing needs the length first: a pipe is refused with a clear error, not a crash.
        CliResult encrypted = await RunWithPipeAsync(RepoPaths.SampleModel, "encrypt", input, "--key", key, "--model-id", "m", "--model-version", "1", "--out", ws["piped.mseal"]);
        Assert.Equal(ExitCodes.IoError, encrypted.ExitCode);
        Assert.Contains("is not a regular file", encrypted.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(ws["piped.mseal"]));
    }

    private static async Task<CliResult> RunWithPipeAsync(string standardInput, params string[] args)
    {
        using var process = CliProcess.Start(args, standardInput: standardInput);
        CliResult result = await process.WaitAsync();
        await process.StandardInputFed!;
        return result;
    }
}
