using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ModelSeal.Oidc;

namespace ModelSeal.Cli.Commands;

/// <summary>
/// The OpenID Connect provider of <c>modelseal demo --sign-in</c>: the repository's test provider
/// (tests/oidc-provider: provider.mjs, the certified oidc-provider package from npm, pinned by package-lock.json),
/// embedded in this program. <see cref="InstallAsync"/> extracts it to a per-user cache directory and installs its
/// packages with <c>npm ci</c> once (again only when the embedded lock file changes); <see cref="StartAsync"/> runs
/// <c>node provider.mjs</c> on a free loopback port; disposing stops it. The process also exits by itself when this
/// program dies, since its standard input (a pipe from here) closes (<c>--exit-on-stdin-close</c>).
/// </summary>
internal sealed class DemoProvider : IAsyncDisposable
{
    /// <summary>The Node.js major version provider.mjs needs.</summary>
    public const int MinimumNodeMajor = 20;

    private const string ResourcePrefix = "ModelSeal.Cli.oidc-provider.";
    private const string LockFile = "package-lock.json";
    private const string InstalledStamp = ".modelseal-installed";
    private static readonly string[] ProjectFiles = ["provider.mjs", "package.json", LockFile];
    private static readonly TimeSpan InstallTimeout = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);

    private readonly Process _process;
    private readonly StringBuilder _output;

    private DemoProvider(Process process, StringBuilder output)
    {
        _process = process;
        _output = output;
    }

    /// <summary>The provider's issuer, <c>http://127.0.0.1:PORT</c>.</summary>
    public string Issuer { get; private set; } = "";

    /// <summary>The error of a missing, too old or unusable Node.js or npm, with what to install.</summary>
    public static CliException Missing(string what) => new(
        ExitCodes.MissingPrerequisite,
        $"the sign-in demo needs Node.js {MinimumNodeMajor} or later and npm ({what}).",
        $"install them (Debian/Ubuntu: sudo apt install nodejs npm; elsewhere: https://nodejs.org) and put node and npm on PATH. The plain 'modelseal demo' needs nothing besides this program.");

    /// <summary>Finds <c>node</c> and <c>npm</c> on <paramref name="path"/> (a PATH value) and checks Node's version.</summary>
    /// <exception cref="CliException">Either is missing, or Node is older than <see cref="MinimumNodeMajor"/>.</exception>
    public static async Task<NodeTools> FindNodeAsync(string? path, CancellationToken cancellationToken)
    {
        string node = ProcessTools.FindOnPath("node", path) ?? throw Missing("'node' is not on PATH");
        string npm = ProcessTools.FindOnPath("npm", path) ?? throw Missing("'npm' is not on PATH");
        (int exitCode, string output) = await RunAsync(node, ["--version"], AppContext.BaseDirectory, TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
        string version = output.Trim();
        if (exitCode != 0 || !version.StartsWith('v') || !int.TryParse(version[1..].Split('.')[0], NumberStyles.None, CultureInfo.InvariantCulture, out int major))
        {
            throw Missing($"'{node} --version' did not answer a version");
        }

        if (major < MinimumNodeMajor)
        {
            throw Missing($"{node} is Node.js {version}");
        }

        return new NodeTools(node, npm, version);
    }

    /// <summary>
    /// The per-user cache directory of the provider: <c>$XDG_CACHE_HOME/modelseal/oidc-provider</c> (default
    /// <c>~/.cache</c>) on Linux, <c>~/Library/Caches/ModelSeal/oidc-provider</c> on macOS,
    /// <c>%LOCALAPPDATA%\ModelSeal\Cache\oidc-provider</c> on Windows.
    /// </summary>
    public static string CacheDirectory()
    {
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (OperatingSystem.IsWindows())
        {
            return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "ModelSeal", "Cache", "oidc-provider");
        }

        if (OperatingSystem.IsMacOS())
        {
            return Path.Combine(home, "Library", "Caches", "ModelSeal", "oidc-provider");
        }

        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        return Path.Combine(string.IsNullOrEmpty(xdg) || !Path.IsPathRooted(xdg) ? Path.Combine(home, ".cache") : xdg, "modelseal", "oidc-provider");
    }

    /// <summary>
    /// Extracts the embedded provider project into <paramref name="directory"/> and runs <c>npm ci</c> there unless the
    /// packages of this very lock file are already installed. One install at a time across processes (a lock file).
    /// Returns true when it installed, false when it reused the installed packages.
    /// </summary>
    /// <exception cref="CliException"><c>npm ci</c> failed (offline, no registry) or took too long.</exception>
    public static async Task<bool> InstallAsync(NodeTools tools, string directory, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(directory);
        using FileStream exclusive = await ProcessTools.LockAsync(Path.Combine(directory, ".install.lock"), InstallTimeout, cancellationToken).ConfigureAwait(false);
        string lockHash = "";
        foreach (string name in ProjectFiles)
        {
            byte[] content = await ReadResourceAsync(name, cancellationToken).ConfigureAwait(false);
            string file = Path.Combine(directory, name);
            if (!File.Exists(file) || !(await File.ReadAllBytesAsync(file, cancellationToken).ConfigureAwait(false)).AsSpan().SequenceEqual(content))
            {
                await File.WriteAllBytesAsync(file, content, cancellationToken).ConfigureAwait(false);
            }

            if (name == LockFile)
            {
                lockHash = Convert.ToHexStringLower(SHA256.HashData(content));
            }
        }

        string modules = Path.Combine(directory, "node_modules");
        string stamp = Path.Combine(modules, InstalledStamp);
        if (File.Exists(Path.Combine(modules, "oidc-provider", "package.json")) && File.Exists(stamp)
            && (await File.ReadAllTextAsync(stamp, cancellationToken).ConfigureAwait(false)).Trim() == lockHash)
        {
            return false;
        }

        (int exitCode, string output) = await RunAsync(tools.Npm, ["ci", "--no-audit", "--no-fund", "--loglevel=error"], directory, InstallTimeout, cancellationToken).ConfigureAwait(false);
        if (exitCode != 0 || !File.Exists(Path.Combine(modules, "oidc-provider", "package.json")))
        {
            throw new CliException(
                ExitCodes.MissingPrerequisite,
                $"npm ci could not install the OpenID Connect provider's packages in {directory} (exit {exitCode}): {LastLines(output, 6)}",
                "npm ci downloads oidc-provider and its dependencies from the npm registry on the first run: check the network connection and npm's registry and proxy settings ('npm config get registry'), then run the demo again. The plain 'modelseal demo' needs no network.");
        }

        await File.WriteAllTextAsync(stamp, lockHash + "\n", cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <summary>
    /// Starts <c>node provider.mjs</c> from <paramref name="directory"/> on a free loopback port, its signing keys in
    /// <paramref name="stateDirectory"/> and its accounts in <paramref name="accountsFile"/>, and waits for its
    /// <c>ready URL</c> line.
    /// </summary>
    /// <exception cref="CliException">The provider exited or stayed silent instead.</exception>
    public static async Task<DemoProvider> StartAsync(NodeTools tools, string directory, string stateDirectory, string accountsFile, CancellationToken cancellationToken)
    {
        var output = new StringBuilder();
        (Process process, Task<string> ready) = ProcessTools.StartProvider(
            tools.Node,
            directory,
            ["--state", stateDirectory, "--port", "0", "--accounts", accountsFile],
            line =>
            {
                lock (output)
                {
                    output.AppendLine(line);
                }
            });
        var provider = new DemoProvider(process, output);
        try
        {
            provider.Issuer = await ready.WaitAsync(ReadyTimeout, cancellationToken).ConfigureAwait(false);
            return provider;
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException)
        {
            await provider.DisposeAsync().ConfigureAwait(false);
            string said;
            lock (output)
            {
                said = output.ToString();
            }

            throw new CliException(
                ExitCodes.MissingPrerequisite,
                $"the OpenID Connect provider (node provider.mjs in {directory}) did not start: {e.Message}. {LastLines(said, 6)}",
                $"delete {directory} to have it installed afresh, and check that 'node --version' is {MinimumNodeMajor} or later.",
                e);
        }
        catch
        {
            await provider.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Stops the provider: its standard input closes (its signal to exit); killed if it has not within 10 s.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await ProcessTools.StopProviderAsync(_process, StopTimeout).ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
            // Never started, or already gone and disposed.
        }
        finally
        {
            _process.Dispose();
        }
    }

    /// <summary>What the provider printed so far (never a token).</summary>
    public override string ToString()
    {
        lock (_output)
        {
            return $"OpenID Connect provider {Issuer}: {_output}";
        }
    }

    private static async Task<byte[]> ReadResourceAsync(string name, CancellationToken cancellationToken)
    {
        await using Stream resource = typeof(DemoProvider).Assembly.GetManifestResourceStream(ResourcePrefix + name)
            ?? throw new InvalidOperationException($"The OpenID Connect provider's {name} is missing from this build.");
        using var copy = new MemoryStream();
        await resource.CopyToAsync(copy, cancellationToken).ConfigureAwait(false);
        return copy.ToArray();
    }

    /// <summary>Runs a program to its end with no input; a timeout is an exit code of -1 with the reason as its output.</summary>
    private static async Task<(int ExitCode, string Output)> RunAsync(string program, string[] arguments, string directory, TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            return await ProcessTools.RunAsync(program, arguments, directory, timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException e)
        {
            return (-1, e.Message);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw Missing($"{program} could not be started: {e.Message}");
        }
    }

    private static string LastLines(string text, int count) =>
        string.Join(" / ", text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).TakeLast(count));
}

/// <summary>Node.js and npm as found on PATH, and Node's version (<c>v20.19.2</c>).</summary>
internal sealed record NodeTools(string Node, string Npm, string Version);
