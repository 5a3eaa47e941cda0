using System.Diagnostics;

namespace ModelSeal.Cli.Tests;

/// <summary>Runs the real built CLI (ModelSeal.Cli.dll, the `modelseal` command) as a child process: checks the Program.Main wiring end to end.</summary>
public sealed class ProcessTests
{
    [Fact]
    public async Task The_built_cli_reports_a_plain_model_as_not_sealed_with_exit_code_3()
    {
        string cli = Path.Combine(AppContext.BaseDirectory, "ModelSeal.Cli.dll");
        Assert.True(File.Exists(cli), "ModelSeal.Cli.dll should be copied next to the tests by the project reference: " + cli);
        var start = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(cli);
        start.ArgumentList.Add("inspect");
        start.ArgumentList.Add(Repo.SampleModel);

        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);

        string error = await stderr;
        Assert.True(process.ExitCode == ExitCodes.FormatError, $"exit {process.ExitCode}\n{error}");
        Assert.Equal(string.Empty, await stdout);
        string[] lines = error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.StartsWith("error: ", lines[0], StringComparison.Ordinal);
        Assert.Contains("is not a sealed model", lines[0], StringComparison.Ordinal);
        Assert.StartsWith("hint: ", lines[1], StringComparison.Ordinal);
        Assert.Equal(2, lines.Length);
    }

    private static string DotnetHost()
    {
        string? host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host))
        {
            return host;
        }

        string? self = Environment.ProcessPath;
        return self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "dotnet";
    }
}
