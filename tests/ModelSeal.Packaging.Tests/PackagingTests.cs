using System.IO.Compression;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace ModelSeal.Packaging.Tests;

/// <summary>
/// The NuGet packages and the .NET tool as a user gets them: packed from the repository into a local feed
/// (<see cref="PackedFeed"/>), read back as zip files, and the tool installed from the feed and run.
/// </summary>
public sealed partial class PackagingTests(PackedFeed feed) : IClassFixture<PackedFeed>
{
    /// <summary>The library packages and the ModelSeal packages each must depend on (at the same version).</summary>
    public static TheoryData<string, string[]> Libraries => new()
    {
        { "ModelSeal", [] },
        { "ModelSeal.Client", ["ModelSeal"] },
        { "ModelSeal.Client.Pkcs11", ["ModelSeal", "ModelSeal.Client"] },
        { "ModelSeal.OnnxRuntime", ["ModelSeal"] },
    };

    public static TheoryData<string> AllPackages => new(PackedFeed.ExpectedPackages);

    /// <summary>The kind GUID of the SourceLink JSON in a portable PDB's custom debug information.</summary>
    private static readonly Guid SourceLinkKind = new("CC110556-A091-4D38-9FEC-25AB9A351A6A");

    [Fact]
    public void Pack_produces_exactly_the_expected_packages_and_symbol_packages()
    {
        string[] expected = PackedFeed.ExpectedPackages.Select(id => $"{id}.{feed.Version}.nupkg")
            .Concat(PackedFeed.PackagesWithSymbols.Select(id => $"{id}.{feed.Version}.snupkg"))
            .Order(StringComparer.Ordinal)
            .ToArray();
        string[] actual = Directory.GetFiles(feed.Feed).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;
        Assert.True(expected.SequenceEqual(actual), $"expected {string.Join(", ", expected)}\nfound {string.Join(", ", actual)}\n{feed.Pack}");
    }

    [Theory]
    [MemberData(nameof(AllPackages))]
    public void Every_package_has_id_version_licence_readme_repository_and_description(string id)
    {
        using ZipArchive package = ZipFile.OpenRead(feed.PackagePath(id));
        XElement metadata = Nuspec(package, id);

        Assert.Equal(id, Value(metadata, "id"));
        Assert.Equal(feed.Version, Value(metadata, "version"));
        XElement license = Child(metadata, "license");
        Assert.Equal("expression", (string?)license.Attribute("type"));
        Assert.Equal("Apache-2.0", license.Value);
        Assert.False(string.IsNullOrWhiteSpace(Value(metadata, "description")), "empty description");
        Assert.NotEqual("Package Description", Value(metadata, "description"));
        Assert.Contains("modelseal", Value(metadata, "tags").Split(' '));
        Assert.Equal(feed.RepositoryUrl, Value(metadata, "projectUrl"));

        XElement repository = Child(metadata, "repository");
        Assert.Equal("git", (string?)repository.Attribute("type"));
        Assert.Equal(feed.RepositoryUrl, (string?)repository.Attribute("url"));
        Assert.Matches(CommitPattern(), (string?)repository.Attribute("commit") ?? string.Empty);

        // The readme renders on nuget.org: a Markdown file at the package root, headed by the package id.
        Assert.Equal("README.md", Value(metadata, "readme"));
        string readme = ReadText(package, "README.md");
        Assert.StartsWith($"# {id}\n", readme.ReplaceLineEndings("\n"), StringComparison.Ordinal);
        Assert.DoesNotContain("](docs/", readme, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Libraries))]
    public void Library_packages_carry_the_assembly_and_its_xml_docs_and_depend_on_the_same_modelseal_version(string id, string[] modelSealDependencies)
    {
        using ZipArchive package = ZipFile.OpenRead(feed.PackagePath(id));
        XElement metadata = Nuspec(package, id);

        Assert.NotNull(package.GetEntry($"lib/net10.0/{id}.dll"));
        XDocument docs = XDocument.Parse(ReadText(package, $"lib/net10.0/{id}.xml"));
        Assert.Equal(id, docs.Root?.Element("assembly")?.Element("name")?.Value);
        Assert.NotEmpty(docs.Descendants("member"));

        XElement[] dependencies = metadata.Descendants().Where(e => e.Name.LocalName == "dependency").ToArray();
        var modelSeal = dependencies.Where(d => ((string?)d.Attribute("id"))!.StartsWith("ModelSeal", StringComparison.Ordinal)).ToArray();
        Assert.Equal(modelSealDependencies, modelSeal.Select(d => (string?)d.Attribute("id")).Order(StringComparer.Ordinal).ToArray());
        Assert.All(modelSeal, d => Assert.Equal(feed.Version, (string?)d.Attribute("version")));
        // Build-time only: the public API analyzer must not flow to consumers.
        Assert.DoesNotContain(dependencies, d => (string?)d.Attribute("id") == "Microsoft.CodeAnalysis.PublicApiAnalyzers");
        if (id == "ModelSeal")
        {
            Assert.Empty(dependencies); // the core library uses the base class library only
        }
    }

    [Theory]
    [MemberData(nameof(Libraries))]
    public void Symbol_packages_hold_the_matching_pdb_with_source_link_to_the_packed_commit(string id, string[] modelSealDependencies)
    {
        _ = modelSealDependencies;
        string commit;
        byte[] dll;
        using (ZipArchive package = ZipFile.OpenRead(feed.PackagePath(id)))
        {
            commit = (string)Child(Nuspec(package, id), "repository").Attribute("commit")!;
            dll = ReadBytes(package, $"lib/net10.0/{id}.dll");
        }

        using ZipArchive symbols = ZipFile.OpenRead(feed.SymbolPackagePath(id));
        byte[] pdb = ReadBytes(symbols, $"lib/net10.0/{id}.pdb");

        // The PDB belongs to the packed DLL: the DLL's CodeView entry names the PDB's id.
        using var pe = new PEReader(new MemoryStream(dll));
        DebugDirectoryEntry codeView = Assert.Single(pe.ReadDebugDirectory(), e => e.Type == DebugDirectoryEntryType.CodeView);
        Guid expectedId = pe.ReadCodeViewDebugDirectoryData(codeView).Guid;
        using MetadataReaderProvider provider = MetadataReaderProvider.FromPortablePdbStream(new MemoryStream(pdb));
        MetadataReader reader = provider.GetMetadataReader();
        Assert.Equal(expectedId, new Guid(reader.DebugMetadataHeader!.Id.AsSpan(0, 16)));

        // SourceLink: the sources map to the repository's raw content at the commit named in the nuspec.
        string? sourceLink = null;
        foreach (CustomDebugInformationHandle handle in reader.CustomDebugInformation)
        {
            CustomDebugInformation info = reader.GetCustomDebugInformation(handle);
            if (reader.GetGuid(info.Kind) == SourceLinkKind)
            {
                sourceLink = Encoding.UTF8.GetString(reader.GetBlobBytes(info.Value));
            }
        }

        Assert.True(sourceLink is not null, $"{id}.pdb has no SourceLink information");
        using JsonDocument json = JsonDocument.Parse(sourceLink);
        JsonProperty mapping = Assert.Single(json.RootElement.GetProperty("documents").EnumerateObject());
        Assert.Equal($"https://raw.githubusercontent.com{new Uri(feed.RepositoryUrl).AbsolutePath.TrimEnd('/')}/{commit}/*", mapping.Value.GetString());
        // Under CI (ContinuousIntegrationBuild) the paths in the PDB are deterministic (/_/), elsewhere the clone's own.
        string root = Environment.GetEnvironmentVariable("CI") == "true"
            ? "/_/"
            : Path.TrimEndingDirectorySeparator(feed.RepoRoot) + Path.DirectorySeparatorChar;
        Assert.Equal(root + "*", mapping.Name);
    }

    [Fact]
    public void Tool_package_is_a_dotnet_tool_named_modelseal_without_dependencies_or_mobile_native_libraries()
    {
        using ZipArchive package = ZipFile.OpenRead(feed.PackagePath(PackedFeed.ToolPackage));
        XElement metadata = Nuspec(package, PackedFeed.ToolPackage);

        XElement packageType = Assert.Single(metadata.Descendants(), e => e.Name.LocalName == "packageType");
        Assert.Equal("DotnetTool", (string?)packageType.Attribute("name"));
        Assert.DoesNotContain(metadata.Descendants(), e => e.Name.LocalName == "dependency");

        XDocument settings = XDocument.Parse(ReadText(package, "tools/net10.0/any/DotnetToolSettings.xml"));
        XElement command = Assert.Single(settings.Descendants("Command"));
        Assert.Equal("modelseal", (string?)command.Attribute("Name"));
        Assert.Equal("ModelSeal.Cli.dll", (string?)command.Attribute("EntryPoint"));

        string[] entries = package.Entries.Select(e => e.FullName).ToArray();
        Assert.Contains("tools/net10.0/any/ModelSeal.dll", entries);
        Assert.Contains("tools/net10.0/any/ModelSeal.Server.dll", entries);
        Assert.Contains("tools/net10.0/any/runtimes/linux-x64/native/libonnxruntime.so", entries);
        Assert.DoesNotContain(entries, e => e.StartsWith("tools/net10.0/any/runtimes/android", StringComparison.Ordinal) || e.StartsWith("tools/net10.0/any/runtimes/ios", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_tool_installs_from_the_feed_reports_the_version_and_runs_the_demo()
    {
        string tools = Path.Combine(feed.Root, "tools");
        ProcessResult install = await DotnetProcess.RunAsync(
            DotnetProcess.Host,
            ["tool", "install", PackedFeed.ToolPackage, "--tool-path", tools, "--configfile", feed.NuGetConfig, "--version", feed.Version],
            feed.Root,
            TimeSpan.FromMinutes(4));
        Assert.True(install.ExitCode == 0, install.ToString());
        // Installed from the feed at the unique version (a tool-path install keeps its packages in .store/).
        Assert.True(Directory.Exists(Path.Combine(tools, ".store", PackedFeed.ToolPackage.ToLowerInvariant(), feed.Version)), install.ToString());

        string modelseal = Path.Combine(tools, OperatingSystem.IsWindows() ? "modelseal.exe" : "modelseal");
        // The command's launcher finds the runtime through DOTNET_ROOT: the one this SDK belongs to.
        var environment = new Dictionary<string, string> { ["DOTNET_ROOT"] = DotnetRoot() };

        ProcessResult version = await DotnetProcess.RunAsync(modelseal, ["--version"], feed.Root, TimeSpan.FromMinutes(1), environment);
        Assert.True(version.ExitCode == 0, version.ToString());
        // The informational version: the package version, then the commit SourceLink recorded (+sha) when known.
        Assert.Matches($"^{Regex.Escape(feed.Version)}(\\+[0-9a-f]{{40}})?$", version.Stdout.Trim());

        ProcessResult demo = await DotnetProcess.RunAsync(modelseal, ["demo"], feed.Root, TimeSpan.FromMinutes(4), environment);
        Assert.True(demo.ExitCode == 0, demo.ToString());
        Assert.EndsWith("demo passed.", demo.Stdout.TrimEnd(), StringComparison.Ordinal);
    }

    private static string DotnetRoot()
    {
        FileSystemInfo host = new FileInfo(DotnetProcess.Host);
        host = host.ResolveLinkTarget(returnFinalTarget: true) ?? host;
        return Path.GetDirectoryName(host.FullName)!;
    }

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitPattern();

    private static XElement Nuspec(ZipArchive package, string id)
    {
        XDocument nuspec = XDocument.Parse(ReadText(package, id + ".nuspec"));
        return nuspec.Root?.Elements().SingleOrDefault(e => e.Name.LocalName == "metadata")
            ?? throw new InvalidOperationException($"{id}.nuspec has no metadata element");
    }

    private static XElement Child(XElement parent, string name) =>
        parent.Elements().SingleOrDefault(e => e.Name.LocalName == name)
        ?? throw new Xunit.Sdk.XunitException($"the nuspec has no <{name}>:\n{parent}");

    private static string Value(XElement metadata, string name) => Child(metadata, name).Value;

    private static byte[] ReadBytes(ZipArchive package, string path)
    {
        ZipArchiveEntry entry = package.GetEntry(path) ?? throw new Xunit.Sdk.XunitException($"the package has no {path}; it has:\n{string.Join('\n', package.Entries.Select(e => e.FullName))}");
        using Stream stream = entry.Open();
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    private static string ReadText(ZipArchive package, string path) => Encoding.UTF8.GetString(ReadBytes(package, path)).TrimStart('\uFEFF');
}
