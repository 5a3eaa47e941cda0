using System.Diagnostics;
using System.Text;
using ModelSeal.Server.Files;

namespace ModelSeal.Server.Tests;

/// <summary>
/// <c>modelseal serve</c> in a process of its own (the built ModelSeal.Cli.dll next to the tests), on an ephemeral
/// loopback port: what an operator runs, and something a test can kill with SIGKILL.
/// </summary>
internal sealed class ServerProcess : ServerClient, IAsyncDisposable
{
    /// <summary>The environment variable the tests hand the PostgreSQL connection string in (never argv).</summary>
    public const string ConnectionVariable = "MODELSEAL_TEST_INSTANCE_POSTGRES";

    private readonly Process _process;
    private readonly StringBuilder _output;

    private ServerProcess(Process process, StringBuilder output, Uri address, string dataDirectory)
        : base(address, TestKeyServer.CredentialFileFor(dataDirectory))
    {
        _process = process;
        _output = output;
        DataDirectory = dataDirectory;
    }

    public string DataDirectory { get; }

    /// <summary>Everything the server printed so far (stdout and stderr).</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>
    /// Starts <c>modelseal serve</c> in <paramref name="dataDirectory"/>, on SQLite, or on PostgreSQL when
    /// <paramref name="postgres"/> is given, with further <paramref name="arguments"/> (e.g. <c>--config FILE</c>);
    /// returns once it listens.
    /// </summary>
    public static async Task<ServerProcess> StartAsync(string dataDirectory, string? postgres = null, IEnumerable<string>? arguments = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        string cli = CliPath();
        var start = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string argument in new[] { cli, "serve", "--data", dataDirectory, "--urls", "http://127.0.0.1:0", "--admin-credential-out", TestKeyServer.CredentialFileFor(dataDirectory) })
        {
            start.ArgumentList.Add(argument);
        }

        foreach (string argument in arguments ?? [])
        {
            start.ArgumentList.Add(argument);
        }

        if (postgres is not null)
        {
            start.ArgumentList.Add("--database");
            start.ArgumentList.Add("postgres");
            start.ArgumentList.Add("--connection-string-env");
            start.ArgumentList.Add(ConnectionVariable);
            start.Environment[ConnectionVariable] = postgres;
        }

        // One audit record per refusal, written at once, as the tests count them (a window's records wait for its end).
        start.Environment["MODELSEAL_Audit__RefusalWindow"] = "00:00:00";
        foreach ((string name, string value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        var output = new StringBuilder();
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => Received(e.Data);
        process.ErrorDataReceived += (_, e) => Received(e.Data);
        process.Exited += (_, _) => listening.TrySetException(new InvalidOperationException("modelseal serve exited before listening."));
        Assert.True(process.Start());
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        try
        {
            Uri address = await listening.Task.WaitAsync(TimeSpan.FromMinutes(1), TestContext.Current.CancellationToken);
            return new ServerProcess(process, output, address, dataDirectory);
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException)
        {
            process.Kill();
            await process.WaitForExitAsync(CancellationToken.None);
            lock (output)
            {
                Assert.Fail($"modelseal serve did not start: {e.Message}\n{output}");
            }

            throw;
        }

        void Received(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (output)
            {
                output.AppendLine(line);
            }

            const string Marker = "modelseal key server listening on ";
            if (line.StartsWith(Marker, StringComparison.Ordinal))
            {
                listening.TrySetResult(new Uri(line[Marker.Length..].Split(';', ',', ' ')[0]));
            }
        }
    }

    /// <summary>
    /// Gives a second instance's data directory the first one's token-signing key and master keys (what an operator
    /// deploys to every instance; docs/deploy.md "Several instances"), and its admin credential file (the credential's
    /// hash is in the shared database).
    /// </summary>
    public static void ShareSecrets(string from, string to)
    {
        Directory.CreateDirectory(to);
        File.Copy(TestKeyServer.CredentialFileFor(from), TestKeyServer.CredentialFileFor(to));
        foreach (string file in new[] { "token-signing.key", "answer-signing.key", "master.keys" })
        {
            // These files exist with the file provider only; a PKCS#11 token is shared by every instance. Instances on
            // one database must share the answer key (docs/deploy.md), or each signs audit checkpoints the others reject.
            if (File.Exists(Path.Combine(from, file)))
            {
                File.Copy(Path.Combine(from, file), Path.Combine(to, file));
            }
        }

        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(to, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    /// <summary>SIGKILL: no shutdown, no flush, no chance to finish what is in flight.</summary>
    public async Task KillAsync()
    {
        _process.Kill();
        await _process.WaitForExitAsync(TestContext.Current.CancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync(CancellationToken.None);
        }

        _process.Dispose();
        Client.Dispose();
        List<string> leaked = Secrets.FoundIn(Output.Split('\n'));
        Assert.True(leaked.Count == 0, $"The server printed secrets: {string.Join(", ", leaked)}.");
    }

    /// <summary>ModelSeal.Cli.dll in the CLI's output directory for the configuration these tests were built in.</summary>
    private static string CliPath()
    {
        // The tests run from tests/ModelSeal.Server.Tests/bin/<Configuration>/<tfm>/; the CLI is in src/ModelSeal.Cli/bin/<Configuration>/<tfm>/.
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string tfm = output.Name;
        string configuration = output.Parent!.Name;
        string cli = Path.Combine(output.Parent.Parent!.Parent!.Parent!.Parent!.FullName, "src", "ModelSeal.Cli", "bin", configuration, tfm, "ModelSeal.Cli.dll");
        Assert.True(File.Exists(cli), "The CLI should have been built with the tests (project reference): " + cli);
        return cli;
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
