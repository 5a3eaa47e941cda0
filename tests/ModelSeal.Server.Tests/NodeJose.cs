using System.Diagnostics;
using System.Text;

namespace ModelSeal.Server.Tests;

/// <summary>
/// tests/node/jwks-verify: verifies a JWT with jose (an independent JOSE library, under Node) using only a JWKS. The
/// npm packages are installed with <c>npm ci</c> (package-lock.json) when node_modules is missing. Without
/// <c>node</c> on PATH the test is skipped locally and fails under CI (<c>CI=true</c>).
/// </summary>
internal static class NodeJose
{
    private const string NeedsNode = "the JWKS interoperability test (verifies server tokens with jose using only the published JWKS)";

    private static readonly TimeSpan InstallTimeout = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan VerifyTimeout = TimeSpan.FromMinutes(1);

    public static string Folder => Path.Combine(RepoPaths.Root, "tests", "node", "jwks-verify");

    /// <summary>The exit code, standard output and standard error of <c>node verify.mjs</c>.</summary>
    internal sealed record Outcome(int ExitCode, string Output, string Error)
    {
        public override string ToString() => $"exit {ExitCode}; stdout: {Output}; stderr: {Error}";
    }

    /// <summary>Runs verify.mjs with the token on standard input; installs jose first if needed.</summary>
    public static async Task<Outcome> VerifyAsync(Uri jwks, string token, string issuer, string audience)
    {
        string node = Services.RequireTool("node", NeedsNode);
        await EnsureInstalledAsync();
        return await RunAsync(node, ["verify.mjs", "--jwks", jwks.AbsoluteUri, "--issuer", issuer, "--audience", audience], Folder, token, VerifyTimeout);
    }

    /// <summary>
    /// <c>npm ci</c> into a private staging folder beside node_modules, then one rename: two test runs that race both
    /// install, the first rename wins and the other run uses its node_modules; nobody sees a half-installed folder.
    /// </summary>
    private static async Task EnsureInstalledAsync()
    {
        string modules = Path.Combine(Folder, "node_modules");
        if (IsInstalled(modules))
        {
            return;
        }

        string npm = Services.RequireTool("npm", NeedsNode);
        string staging = Path.Combine(Folder, ".install-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(staging);
        try
        {
            File.Copy(Path.Combine(Folder, "package.json"), Path.Combine(staging, "package.json"));
            File.Copy(Path.Combine(Folder, "package-lock.json"), Path.Combine(staging, "package-lock.json"));
            Outcome install = await RunAsync(npm, ["ci", "--no-audit", "--no-fund"], staging, null, InstallTimeout);
            Assert.True(install.ExitCode == 0, $"npm ci failed in {staging}: {install}");
            try
            {
                Directory.Move(Path.Combine(staging, "node_modules"), modules);
            }
            catch (IOException) when (IsInstalled(modules))
            {
                // Another run installed it first.
            }

            Assert.True(IsInstalled(modules), $"{modules} exists but holds no jose; delete it to have it installed again.");
        }
        finally
        {
            Directory.Delete(staging, recursive: true);
        }
    }

    private static bool IsInstalled(string modules) => File.Exists(Path.Combine(modules, "jose", "package.json"));

    private static async Task<Outcome> RunAsync(string fileName, string[] arguments, string directory, string? input, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = directory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{fileName} did not start.");
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cancel.CancelAfter(timeout);
        Task<string> output = process.StandardOutput.ReadToEndAsync(cancel.Token);
        Task<string> error = process.StandardError.ReadToEndAsync(cancel.Token);
        try
        {
            if (input is not null)
            {
                await process.StandardInput.WriteAsync(input.AsMemory(), cancel.Token);
            }

            process.StandardInput.Close();
            await process.WaitForExitAsync(cancel.Token);
            return new Outcome(process.ExitCode, await output, await error);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{Path.GetFileName(fileName)} {string.Join(' ', arguments)} did not finish within {timeout}.");
        }
    }
}
