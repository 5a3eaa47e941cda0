using System.Diagnostics;

namespace ModelSeal.Client.Tests;

/// <summary>samples/SignInApp, run as a process against the real key server: sign-in → token → release → open → sign-out.</summary>
public sealed class SignInSampleTests
{
    [Fact]
    public async Task The_sample_opens_the_model_for_the_signed_in_user_and_signs_out()
    {
        using var directory = new TempDirectory();
        using var idp = new TestIdentityProvider("https://idp.example", directory.Sub("jwks.json"));
        await using TestKeyServer server = await SignInServices.StartServerAsync(idp);
        SealedSample sample = await server.PublishSampleAsync("classifier");
        await server.CreateUserLicenceAsync(idp, "alice@idp", ["classifier"]);
        string app = directory.Sub("app");
        Directory.CreateDirectory(app);
        await File.WriteAllBytesAsync(Path.Combine(app, "classifier.mseal"), sample.Sealed, TestContext.Current.CancellationToken);
        string tokenFile = directory.Sub("token");
        string token = idp.Token("alice@idp");
        OwnerOnlyFile.Write(tokenFile, token);

        (int exit, string output, string error) = await RunAsync(app, tokenFile, "classifier.mseal", server.Url);
        Assert.True(exit == 0, error);
        Assert.Equal($"classifier {sample.Header.ModelVersion}: opened {sample.Original.Length} bytes for alice@idp", output.Trim());
        Assert.DoesNotContain(token.Split('.')[2], output + error, StringComparison.Ordinal);
        Assert.Single(Directory.GetFiles(Path.Combine(app, "modelseal", "leases"), "*.lease.json"));
        Assert.Empty(Directory.GetFiles(app, "*.credential", SearchOption.AllDirectories));

        (exit, output, error) = await RunAsync(app, tokenFile, "classifier.mseal", server.Url, "--sign-out");
        Assert.True(exit == 0, error);
        Assert.Equal("signed out: 1 lease(s) removed", output.Trim());
        Assert.Empty(Directory.GetFiles(Path.Combine(app, "modelseal", "leases"), "*.lease.json"));

        // Nobody signed in: the callback's own exception, and no key.
        (exit, _, error) = await RunAsync(app, null, "classifier.mseal", server.Url);
        Assert.Equal(3, exit);
        Assert.Contains("Nobody is signed in", error, StringComparison.Ordinal);
    }

    private static async Task<(int Exit, string Output, string Error)> RunAsync(string workingDirectory, string? tokenFile, params string[] arguments)
    {
        var start = new ProcessStartInfo(DotnetHost())
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(SamplePath());
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment.Remove("MODELSEAL_SIGNIN_TOKEN");
        start.Environment.Remove("MODELSEAL_ANSWER_KEY");
        if (tokenFile is null)
        {
            start.Environment.Remove("MODELSEAL_SIGNIN_TOKEN_FILE");
        }
        else
        {
            start.Environment["MODELSEAL_SIGNIN_TOKEN_FILE"] = tokenFile;
        }

        using Process process = Process.Start(start)!;
        Task<string> output = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        Task<string> error = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await output, await error);
    }

    private static string SamplePath()
    {
        // The tests run from tests/ModelSeal.Client.Tests/bin/<Configuration>/<tfm>/; the sample is built beside them (project reference).
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string path = Path.Combine(RepoPaths.Root, "samples", "SignInApp", "bin", output.Parent!.Name, output.Name, "SignInApp.dll");
        Assert.True(File.Exists(path), "samples/SignInApp should have been built with the tests (project reference): " + path);
        return path;
    }

    private static string DotnetHost()
    {
        string? host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host))
        {
            return host;
        }

        foreach (string directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(directory, OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException("The dotnet host is neither in DOTNET_HOST_PATH nor on PATH.");
    }
}
