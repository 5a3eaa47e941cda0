using System.Globalization;
using System.Security.Cryptography;
using System.Xml.Linq;

namespace ModelSeal.Packaging.Tests;

/// <summary>
/// Packs the repository once for the test class: <c>dotnet pack ModelSeal.slnx</c> into a temporary local feed, with a
/// version no earlier run used (0.1.0-test.&lt;random&gt;), so the machine's package cache can never serve a stale
/// ModelSeal package. Build output goes to a temporary artifacts directory: the repository's bin/ and obj/ are not touched.
/// </summary>
public sealed class PackedFeed : IAsyncLifetime
{
    /// <summary>The libraries and the tool: each packs a .nupkg and a .snupkg (symbols of its lib/ or tools/ assemblies).</summary>
    public static readonly IReadOnlyList<string> PackagesWithSymbols = ["ModelSeal", "ModelSeal.Client", "ModelSeal.Client.Pkcs11", "ModelSeal.OnnxRuntime", ToolPackage];

    /// <summary>
    /// The MSBuild integration (src/ModelSeal.Build, issue "Packaging and build integration"), packed once its project is
    /// in the repository: a .nupkg only (its task assembly is in tasks/, not lib/, so there are no symbols to pack).
    /// </summary>
    public const string BuildPackage = "ModelSeal.Build";

    /// <summary>Every package <c>dotnet pack</c> of the solution must produce, no more and no fewer.</summary>
    public static IReadOnlyList<string> ExpectedPackages { get; } =
        File.Exists(Path.Combine(FindRepoRoot(), "src", BuildPackage, BuildPackage + ".csproj"))
            ? [.. PackagesWithSymbols, BuildPackage]
            : PackagesWithSymbols;

    /// <summary>The .NET tool among <see cref="ExpectedPackages"/>.</summary>
    public const string ToolPackage = "ModelSeal.Tool";

    public PackedFeed()
    {
        RepoRoot = FindRepoRoot();
        XDocument props = XDocument.Load(Path.Combine(RepoRoot, "Directory.Build.props"));
        string Property(string name) =>
            props.Descendants(name).Select(e => e.Value.Trim()).FirstOrDefault(v => v.Length > 0)
            ?? throw new InvalidOperationException($"Directory.Build.props sets no {name}.");
        VersionPrefix = Property("VersionPrefix");
        RepositoryUrl = Property("ModelSealRepositoryUrl");
        // Starts with a letter: a SemVer prerelease identifier of digits only may not have a leading zero.
        VersionSuffix = "test.r" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
        Version = VersionPrefix + "-" + VersionSuffix;
        Root = Directory.CreateTempSubdirectory("modelseal-packaging-tests-").FullName;
        Feed = Directory.CreateDirectory(Path.Combine(Root, "feed")).FullName;
        NuGetConfig = Path.Combine(Root, "NuGet.config");
    }

    public string RepoRoot { get; }

    /// <summary>VersionPrefix from Directory.Build.props, the one place the version is set.</summary>
    public string VersionPrefix { get; }

    public string VersionSuffix { get; }

    /// <summary>The version every package and the tool must report.</summary>
    public string Version { get; }

    /// <summary>ModelSealRepositoryUrl's default from Directory.Build.props.</summary>
    public string RepositoryUrl { get; }

    /// <summary>The temporary directory holding everything (deleted on dispose).</summary>
    public string Root { get; }

    /// <summary>The local feed the packages are packed into.</summary>
    public string Feed { get; }

    /// <summary>A NuGet.config with only the local feed and the package sources this machine restores from.</summary>
    public string NuGetConfig { get; }

    public ProcessResult Pack { get; private set; } = null!;

    public string PackagePath(string id) => Path.Combine(Feed, $"{id}.{Version}.nupkg");

    public string SymbolPackagePath(string id) => Path.Combine(Feed, $"{id}.{Version}.snupkg");

    public async ValueTask InitializeAsync()
    {
        Pack = await DotnetProcess.RunAsync(
            DotnetProcess.Host,
            [
                "pack", Path.Combine(RepoRoot, "ModelSeal.slnx"),
                "--configuration", "Release",
                "--output", Feed,
                "--artifacts-path", Path.Combine(Root, "artifacts"),
                "-p:VersionSuffix=" + VersionSuffix,
                "-nodeReuse:false",
            ],
            RepoRoot,
            TimeSpan.FromMinutes(8));
        if (Pack.ExitCode != 0)
        {
            throw new InvalidOperationException("dotnet pack failed.\n" + Pack);
        }

        await WriteNuGetConfigAsync();
    }

    public ValueTask DisposeAsync()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // A temporary directory left behind is not worth failing the run for.
        }
        catch (UnauthorizedAccessException)
        {
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Clears every inherited source, then adds the local feed and the enabled sources the repository restores from
    /// (`dotnet nuget list source` in the repository root, e.g. the registry mirror), so installing from the feed
    /// depends on neither the repository's nor the user's configuration.
    /// </summary>
    private async Task WriteNuGetConfigAsync()
    {
        ProcessResult sources = await DotnetProcess.RunAsync(DotnetProcess.Host, ["nuget", "list", "source", "--format", "short"], RepoRoot, TimeSpan.FromMinutes(1));
        if (sources.ExitCode != 0)
        {
            throw new InvalidOperationException("dotnet nuget list source failed.\n" + sources);
        }

        // Short format: one line per source, "E <url>" when enabled, "D <url>" when disabled.
        List<string> enabled = sources.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(line => line.StartsWith("E ", StringComparison.Ordinal))
            .Select(line => line[2..].Trim())
            .ToList();
        var packageSources = new XElement("packageSources", new XElement("clear"), new XElement("add", new XAttribute("key", "modelseal-test-feed"), new XAttribute("value", Feed)));
        for (int i = 0; i < enabled.Count; i++)
        {
            packageSources.Add(new XElement("add", new XAttribute("key", "source" + i.ToString(CultureInfo.InvariantCulture)), new XAttribute("value", enabled[i])));
        }

        await File.WriteAllTextAsync(NuGetConfig, new XDocument(new XElement("configuration", packageSources)).ToString());
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ModelSeal.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Cannot find the repository root (ModelSeal.slnx) above " + AppContext.BaseDirectory);
    }
}
