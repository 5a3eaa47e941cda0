using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using ModelSeal.Cli.Commands;

namespace ModelSeal.Cli.Tests;

/// <summary>
/// <c>modelseal demo --sign-in</c>: the sign-in path with the real OpenID Connect provider (tests/oidc-provider under
/// Node.js, embedded in the CLI and installed into the per-user cache on the first run), and what it says without Node.
/// The end-to-end tests skip without Node.js 20+ and npm locally, and fail without them under <c>CI=true</c>.
/// </summary>
public sealed partial class SignInDemoTests
{
    [Fact]
    public async Task Sign_in_demo_signs_a_user_in_releases_the_key_under_the_rule_opens_the_model_and_leaves_no_credential()
    {
        await RequireNodeAsync();
        string[] before = TemporaryDirectories();

        CliResult result = await Workspace.RunAsync("demo", "--sign-in");

        Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());
        Assert.Matches(@"provider   OpenID Connect provider \(oidc-provider under Node\.js v\d+\.\d+\.\d+\) at http://127\.0\.0\.1:\d+", result.Stdout);
        Assert.Contains("0 licences: the rule decides", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("ada signed in: authorization code with PKCE over HTTP", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("with sub user-ada, plan pro", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("SignInTokenSource handed over ada's access token", result.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"audit      record \d+: key\.released to user-ada of http://127\.0\.0\.1:\d+ under rule pro-plan", result.Stdout);
        Assert.Contains("identical to the plaintext model's outputs", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("on disk    no credential file: the app's directory holds only classifier.mseal", result.Stdout, StringComparison.Ordinal);
        Assert.EndsWith("demo passed." + Environment.NewLine, result.Stdout, StringComparison.Ordinal);
        Assert.Empty(result.Stderr);
        Assert.Equal(before, TemporaryDirectories());
        await AssertStoppedAsync(Issuer(result.Stdout));
    }

    [Fact]
    public async Task Sign_in_demo_json_prints_one_object_and_its_report_on_stderr()
    {
        await RequireNodeAsync();

        CliResult result = await Workspace.RunAsync("demo", "--sign-in", "--json");

        Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());
        JsonElement json = result.Json();
        Assert.Equal("demo", json.GetProperty("command").GetString());
        Assert.True(json.GetProperty("signIn").GetBoolean());
        Assert.True(json.GetProperty("passed").GetBoolean());
        Assert.Equal("user-ada", json.GetProperty("subject").GetString());
        Assert.Equal("pro-plan", json.GetProperty("rule").GetString());
        Assert.Equal(0, json.GetProperty("credentialFiles").GetInt32());
        Assert.True(json.GetProperty("outputsMatch").GetBoolean());
        Assert.Equal(Issuer(result.Stderr), json.GetProperty("issuer").GetString());
        Assert.Contains("signed in: authorization code with PKCE", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sign_in_demo_cancelled_stops_the_provider_and_leaves_nothing_behind()
    {
        await RequireNodeAsync();
        string[] before = TemporaryDirectories();
        using var stop = new CancellationTokenSource();
        var output = new LineSignal("  sign-in ");

        Task<CliResult> run = Workspace.RunAsync(["demo", "--sign-in"], interactive: false, context => context with { Out = output }, stop.Token);
        await Task.WhenAny(output.Seen, run);
        Assert.True(output.Seen.IsCompleted, run.IsCompleted ? (await run).ToString() : "no sign-in line");
        await stop.CancelAsync();
        CliResult result = await run;

        Assert.Equal(ExitCodes.Cancelled, result.ExitCode);
        Assert.StartsWith("error: cancelled", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("demo passed.", output.ToString(), StringComparison.Ordinal);
        Assert.Equal(before, TemporaryDirectories());
        await AssertStoppedAsync(Issuer(output.ToString()));
    }

    [Fact]
    public async Task Sign_in_demo_interrupted_by_sigint_stops_its_node_process()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "watches the child through /proc and signals it with kill(2): Linux only");
        await RequireNodeAsync();
        using var cli = CliProcess.Start(["demo", "--sign-in"]);

        // Once the CLI has started provider.mjs, stop the CLI, send SIGINT and let it go on.
        int node = await ProviderChildAsync(cli);
        Proc.Kill(cli.Id, Proc.SIGSTOP);
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1)))
        {
            while (Proc.State(cli.Id) != 'T')
            {
                await Task.Delay(1, timeout.Token);
            }
        }

        Proc.Kill(cli.Id, Proc.SIGINT);
        Proc.Kill(cli.Id, Proc.SIGCONT);
        CliResult result = await cli.WaitAsync();

        Assert.True(result.ExitCode == ExitCodes.Cancelled, result.ToString());
        Assert.Contains("error: interrupted by SIGINT", result.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists($"/proc/{node}"), $"provider.mjs (pid {node}) outlived the CLI");
    }

    [Fact]
    public async Task Sign_in_demo_without_node_says_what_to_install_and_starts_nothing()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "PATH holds only a link to dotnet.");
        string[] before = TemporaryDirectories();
        using var tools = new TempDirectory("modelseal-no-node-");
        LinkDotnet(tools.Path);
        using var process = CliProcess.Start(["demo", "--sign-in"], new Dictionary<string, string> { ["PATH"] = tools.Path });
        CliResult result = await process.WaitAsync();

        Assert.Equal(ExitCodes.MissingPrerequisite, result.ExitCode);
        Asserts.ErrorWithHint(result, "the sign-in demo needs Node.js 20 or later and npm ('node' is not on PATH)");
        Assert.Contains("apt install nodejs npm", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("https://nodejs.org", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("The plain 'modelseal demo' needs nothing", result.Stderr, StringComparison.Ordinal);
        Assert.Empty(result.Stdout);
        Assert.Equal(before, TemporaryDirectories());
    }

    [Fact]
    public async Task Sign_in_demo_refuses_a_node_older_than_20_and_a_missing_npm()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "The stand-in node is a shell script.");
        using var tools = new TempDirectory("modelseal-fake-node-");
        FakeTool(tools.Path, "node", "echo v18.19.1");

        CliException noNpm = await Assert.ThrowsAsync<CliException>(() => DemoProvider.FindNodeAsync(tools.Path, TestContext.Current.CancellationToken));
        Assert.Equal(ExitCodes.MissingPrerequisite, noNpm.ExitCode);
        Assert.Contains("'npm' is not on PATH", noNpm.Message, StringComparison.Ordinal);

        FakeTool(tools.Path, "npm", "echo 10.0.0");
        CliException old = await Assert.ThrowsAsync<CliException>(() => DemoProvider.FindNodeAsync(tools.Path, TestContext.Current.CancellationToken));
        Assert.Equal(ExitCodes.MissingPrerequisite, old.ExitCode);
        Assert.Equal($"the sign-in demo needs Node.js 20 or later and npm ({Path.Combine(tools.Path, "node")} is Node.js v18.19.1).", old.Message);
        Assert.Contains("apt install nodejs npm", old.Hint, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sign_in_demo_says_clearly_when_npm_ci_fails()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "The stand-in npm is a shell script.");
        using var tools = new TempDirectory("modelseal-fake-node-");
        FakeTool(tools.Path, "npm", "echo 'npm error code ENOTFOUND' >&2; echo 'npm error network request to https://registry.npmjs.org/oidc-provider failed' >&2; exit 1");
        string cache = tools.Sub("cache");

        CliException e = await Assert.ThrowsAsync<CliException>(() => DemoProvider.InstallAsync(new NodeTools("node", Path.Combine(tools.Path, "npm"), "v20.0.0"), cache, TestContext.Current.CancellationToken));

        Assert.Equal(ExitCodes.MissingPrerequisite, e.ExitCode);
        Assert.StartsWith($"npm ci could not install the OpenID Connect provider's packages in {cache} (exit 1): ", e.Message, StringComparison.Ordinal);
        Assert.Contains("ENOTFOUND", e.Message, StringComparison.Ordinal);
        Assert.Contains("check the network connection", e.Hint, StringComparison.Ordinal);
        Assert.Contains("plain 'modelseal demo' needs no network", e.Hint, StringComparison.Ordinal);
        // The provider project was extracted (to be installed next time), its packages not marked installed.
        Assert.True(File.Exists(Path.Combine(cache, "provider.mjs")));
        Assert.True(File.Exists(Path.Combine(cache, "package-lock.json")));
        Assert.False(File.Exists(Path.Combine(cache, "node_modules", ".modelseal-installed")));
    }

    [Fact]
    public async Task Plain_demo_never_runs_node_or_npm()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "The stand-in node and npm are shell scripts.");
        using var tools = new TempDirectory("modelseal-fake-node-");
        string marker = Path.Combine(tools.Path, "ran");
        FakeTool(tools.Path, "node", $"echo node >> '{marker}'; echo v22.0.0");
        FakeTool(tools.Path, "npm", $"echo npm >> '{marker}'");
        LinkDotnet(tools.Path);

        using var process = CliProcess.Start(["demo"], new Dictionary<string, string> { ["PATH"] = tools.Path });
        CliResult result = await process.WaitAsync();

        Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());
        Assert.EndsWith("demo passed." + Environment.NewLine, result.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("provider", result.Stdout, StringComparison.Ordinal);
        Assert.False(File.Exists(marker), "the plain demo ran " + (File.Exists(marker) ? File.ReadAllText(marker) : ""));
    }

    /// <summary>Skips (locally) or fails (under CI=true) without Node.js 20+ and npm, as the server tests do for the provider.</summary>
    private static async Task RequireNodeAsync()
    {
        try
        {
            await DemoProvider.FindNodeAsync(Environment.GetEnvironmentVariable("PATH"), TestContext.Current.CancellationToken);
        }
        catch (CliException e)
        {
            Assert.False(string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase), $"CI=true but {e.Message} (.ci/run installs Debian's nodejs and npm).");
            Assert.Skip($"Needs Node.js 20+ with npm on PATH for the sign-in demo: {e.Message}");
        }
    }

    /// <summary>The pid of the <c>node provider.mjs</c> child of <paramref name="cli"/>, once it has one.</summary>
    private static async Task<int> ProviderChildAsync(CliProcess cli)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        while (true)
        {
            foreach (string entry in Directory.EnumerateDirectories("/proc"))
            {
                if (int.TryParse(Path.GetFileName(entry), out int pid) && ParentOf(pid) == cli.Id && CommandLine(pid).Contains("provider.mjs", StringComparison.Ordinal))
                {
                    return pid;
                }
            }

            Assert.False(cli.Stderr.IsCompleted, "the CLI exited before starting the provider: " + (cli.Stderr.IsCompleted ? await cli.Stderr : ""));
            await Task.Delay(5, timeout.Token);
        }
    }

    private static int? ParentOf(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string CommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }

    private static string[] TemporaryDirectories() =>
        Directory.GetDirectories(Path.GetTempPath(), SignInDemo.TemporaryPrefix + "*");

    private static string Issuer(string report)
    {
        Match match = IssuerPattern().Match(report);
        Assert.True(match.Success, report);
        return match.Groups[1].Value;
    }

    /// <summary>Nothing listens at the provider's address any more: its process is gone, not orphaned.</summary>
    private static async Task AssertStoppedAsync(string issuer)
    {
        var uri = new Uri(issuer);
        using var client = new TcpClient();
        await Assert.ThrowsAsync<SocketException>(async () => await client.ConnectAsync(uri.Host, uri.Port, TestContext.Current.CancellationToken));
    }

    /// <summary>
    /// A link to the dotnet host in <paramref name="directory"/>: the CLI's child process is started as <c>dotnet</c>,
    /// found on the child's PATH, which then holds nothing else of the machine's (no node, no npm).
    /// </summary>
    private static void LinkDotnet(string directory)
    {
        string? dotnet = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "dotnet"))
            .FirstOrDefault(File.Exists);
        Assert.True(dotnet is not null, "dotnet is not on PATH");
        File.CreateSymbolicLink(Path.Combine(directory, "dotnet"), new FileInfo(dotnet).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? dotnet);
    }

    private static void FakeTool(string directory, string name, string script)
    {
        string path = Path.Combine(directory, name);
        File.WriteAllText(path, "#!/bin/sh\n" + script + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    [GeneratedRegex(@"provider   OpenID Connect provider \(.*?\) at (http://127\.0\.0\.1:\d+)")]
    private static partial Regex IssuerPattern();
}
