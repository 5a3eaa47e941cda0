using System.Diagnostics;
using ModelSeal.Oidc;

namespace ModelSeal.Server.Tests.Oidc;

/// <summary>
/// tests/oidc-provider, the Node project of the test OpenID Connect provider: finds <c>node</c> and <c>npm</c> (a test
/// without them is skipped locally and fails under <c>CI=true</c>, as <see cref="Services"/> does for its services) and
/// installs the packages with <c>npm ci</c> from the committed package-lock.json when node_modules is missing or older
/// than that lock file (npm's own record of an install, node_modules/.package-lock.json, is older: the lock changed
/// since). One install at a time: a semaphore within this process, a file lock across processes.
/// </summary>
internal static class NodeProject
{
    private const string NeedsNode = "the OpenID Connect provider tests (tests/oidc-provider, oidc-provider from npm)";

    private static readonly TimeSpan InstallTimeout = TimeSpan.FromMinutes(5);
    private static readonly SemaphoreSlim InstallGate = new(1, 1);
    private static bool _installed;

    /// <summary>tests/oidc-provider in this repository.</summary>
    public static string Folder => Path.Combine(RepoPaths.Root, "tests", "oidc-provider");

    /// <summary>The full path of <c>node</c>, with the project's packages installed; skips or fails without Node.</summary>
    public static async Task<string> RequireInstalledAsync(CancellationToken cancellationToken)
    {
        string node = Services.RequireTool("node", NeedsNode);
        await EnsureInstalledAsync(cancellationToken);
        return node;
    }

    private static async Task EnsureInstalledAsync(CancellationToken cancellationToken)
    {
        string lockFile = Path.Combine(Folder, "package-lock.json");
        string modules = Path.Combine(Folder, "node_modules");
        if (Volatile.Read(ref _installed))
        {
            return;
        }

        await InstallGate.WaitAsync(cancellationToken);
        try
        {
            if (_installed)
            {
                return;
            }

            using FileStream crossProcess = await ProcessTools.LockAsync(Path.Combine(Folder, ".npm-ci.lock"), InstallTimeout, cancellationToken);
            if (!IsInstalled(modules, lockFile))
            {
                string npm = Services.RequireTool("npm", NeedsNode);
                var started = Stopwatch.StartNew();
                (int exitCode, string output) = await ProcessTools.RunAsync(npm, ["ci", "--no-audit", "--no-fund"], Folder, InstallTimeout, cancellationToken);
                Assert.True(exitCode == 0, $"npm ci failed in {Folder} (exit {exitCode}):\n{output}");
                Assert.True(File.Exists(Path.Combine(modules, "oidc-provider", "package.json")), $"npm ci succeeded but {modules} holds no oidc-provider.");
                TestContext.Current.SendDiagnosticMessage($"npm ci in {Folder}: {started.ElapsedMilliseconds} ms");
            }

            Volatile.Write(ref _installed, true);
        }
        finally
        {
            InstallGate.Release();
        }
    }

    /// <summary>
    /// node_modules holds oidc-provider and npm's record of the install (written by <c>npm ci</c> here or in .ci/run)
    /// is not older than package-lock.json.
    /// </summary>
    private static bool IsInstalled(string modules, string lockFile)
    {
        var record = new FileInfo(Path.Combine(modules, ".package-lock.json"));
        return File.Exists(Path.Combine(modules, "oidc-provider", "package.json"))
            && record.Exists
            && record.LastWriteTimeUtc >= File.GetLastWriteTimeUtc(lockFile);
    }
}
