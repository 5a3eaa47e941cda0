using System.Collections;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.ML.OnnxRuntime;

namespace ModelSeal.Build.Tests;

/// <summary>An MSBuild engine that records what the task logs.</summary>
internal sealed class RecordingBuildEngine : IBuildEngine
{
    public List<BuildErrorEventArgs> Errors { get; } = [];

    public List<BuildWarningEventArgs> Warnings { get; } = [];

    public List<string> Messages { get; } = [];

    public string AllText => string.Join('\n', Errors.Select(e => $"error {e.Code}: {e.Message}").Concat(Warnings.Select(w => $"warning {w.Code}: {w.Message}")).Concat(Messages));

    public bool ContinueOnError => false;

    public int LineNumberOfTaskNode => 0;

    public int ColumnNumberOfTaskNode => 0;

    public string ProjectFileOfTaskNode => "test.csproj";

    public bool BuildProjectFile(string projectFileName, string[] targetNames, IDictionary globalProperties, IDictionary targetOutputs) => throw new NotSupportedException();

    public void LogCustomEvent(CustomBuildEventArgs e) => Messages.Add(e.Message ?? string.Empty);

    public void LogErrorEvent(BuildErrorEventArgs e) => Errors.Add(e);

    public void LogMessageEvent(BuildMessageEventArgs e) => Messages.Add(e.Message ?? string.Empty);

    public void LogWarningEvent(BuildWarningEventArgs e) => Warnings.Add(e);
}

/// <summary>Runs <c>dotnet</c> with a timeout; the result carries everything it printed.</summary>
public static class Dotnet
{
    public sealed record Result(int ExitCode, string Output, string CommandLine)
    {
        public override string ToString() => $"$ {CommandLine}\n(exit {ExitCode})\n{Output}";
    }

    public static async Task<Result> RunAsync(string workingDirectory, TimeSpan timeout, params string[] arguments) =>
        await RunProcessAsync(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet", workingDirectory, timeout, arguments);

    /// <summary>Runs a program; on timeout kills its process tree and returns exit code -1 with the output so far.</summary>
    public static async Task<Result> RunProcessAsync(string fileName, string workingDirectory, TimeSpan timeout, params string[] arguments)
    {
        var start = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // A clean MSBuild environment: nothing inherited from the `dotnet test` that runs these tests, no build
        // servers or reused nodes left behind, no telemetry or banners.
        foreach (string name in start.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase)
            || k.StartsWith("MSBuild", StringComparison.Ordinal) || k.StartsWith("TESTINGPLATFORM", StringComparison.OrdinalIgnoreCase)
            || k.Equals("VSTEST_HOST_DEBUG", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }

        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["DOTNET_CLI_DO_NOT_USE_MSBUILD_SERVER"] = "1";
        start.Environment["UseSharedCompilation"] = "false";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";

        var output = new StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (output)
                {
                    output.AppendLine(e.Data);
                }
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (output)
                {
                    output.AppendLine(e.Data);
                }
            }
        };
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        string commandLine = fileName + " " + string.Join(' ', arguments);
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            lock (output)
            {
                return new Result(-1, output + $"\n(timed out after {timeout.TotalSeconds:0} s and was killed)", commandLine);
            }
        }

        process.WaitForExit(); // drains the asynchronous output readers
        lock (output)
        {
            return new Result(process.ExitCode, output.ToString(), commandLine);
        }
    }
}

/// <summary>Byte search: does any file under a directory contain the needle?</summary>
internal static class Plaintext
{
    public static byte[] Prefix(string modelPath)
    {
        byte[] all = File.ReadAllBytes(modelPath);
        return all[..Math.Min(4096, all.Length)];
    }

    public static List<string> FilesContaining(string directory, byte[] needle)
    {
        var hits = new List<string>();
        if (!Directory.Exists(directory))
        {
            return hits;
        }

        foreach (string file in Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories))
        {
            if (File.ReadAllBytes(file).AsSpan().IndexOf(needle) >= 0)
            {
                hits.Add(file);
            }
        }

        return hits;
    }
}

/// <summary>What samples/SealedApp prints for its scores, computed here from the plaintext model.</summary>
internal static class ExpectedInference
{
    public static string Scores(string modelPath)
    {
        using var session = new InferenceSession(modelPath);
        string inputName = session.InputNames[0];
        long[] shape = [.. session.InputMetadata[inputName].Dimensions.Select(d => d < 0 ? 1L : d)];
        float[] pixels = new float[shape.Aggregate(1L, (a, b) => a * b)];
        for (int i = 0; i < pixels.Length; i++)
        {
            pixels[i] = (i % 251) / 251f;
        }

        using OrtValue input = OrtValue.CreateTensorValueFromMemory(pixels, shape);
        using var runOptions = new RunOptions();
        using IDisposableReadOnlyCollection<OrtValue> outputs = session.Run(runOptions, [inputName], [input], session.OutputNames);
        float[] scores = outputs[0].GetTensorDataAsSpan<float>().ToArray();
        return $"scores [{string.Join(", ", scores.Select(s => s.ToString("F6", CultureInfo.InvariantCulture)))}]";
    }
}
