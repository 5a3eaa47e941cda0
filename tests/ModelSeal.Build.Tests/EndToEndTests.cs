using System.Diagnostics;
using System.Text.RegularExpressions;

namespace ModelSeal.Build.Tests;

/// <summary>
/// Packs ModelSeal, ModelSeal.OnnxRuntime and ModelSeal.Build into a local feed with a version of their own (so no
/// cached package is ever used), and builds a copy of samples/SealedApp against them, once for the class. The copy
/// gets a Directory.Build.targets that also lists the plaintext model as Content, None (copied) and EmbeddedResource,
/// the way an app that shipped it before would: none of it may reach bin/ or publish/.
/// </summary>
public sealed class PackagedSampleFixture : IAsyncLifetime
{
    private static readonly TimeSpan PackTimeout = TimeSpan.FromMinutes(4);

    public TempDirectory Work { get; } = new("modelseal-build-e2e-");

    public string Version { get; } = "0.1.0-test." + Guid.NewGuid().ToString("N")[..10];

    public string Feed => Work.Sub("feed");

    /// <summary>The copy of samples/SealedApp.</summary>
    public string App => Work.Sub("SealedApp");

    public string ModelPath => Work.Sub("models", "ch_ppocr_mobile_v2.0_cls_infer.onnx");

    public string KeyFile => Path.Combine(App, "obj", "dev.key");

    public string BinDirectory => Path.Combine(App, "bin", "Debug", "net10.0");

    public Dotnet.Result FirstBuild { get; private set; } = null!;

    public List<string> Timings { get; } = [];

    public async ValueTask InitializeAsync()
    {
        Directory.CreateDirectory(Feed);
        string artifacts = Work.Sub("artifacts");
        foreach (string project in new[] { "ModelSeal", "ModelSeal.OnnxRuntime", "ModelSeal.Build" })
        {
            var watch = Stopwatch.StartNew();
            Dotnet.Result pack = await Dotnet.RunAsync(
                RepoPaths.Root,
                PackTimeout,
                "pack",
                Path.Combine(RepoPaths.Root, "src", project, project + ".csproj"),
                "-c",
                "Release",
                "-o",
                Feed,
                "--artifacts-path",
                artifacts,
                "-p:Version=" + Version,
                "-nodeReuse:false");
            Timings.Add($"pack {project}: {watch.Elapsed.TotalSeconds:0.0} s");
            Check(pack);
        }

        CopySample(App, Work.Sub("models"));
        var build = Stopwatch.StartNew();
        FirstBuild = await BuildAsync(App);
        Timings.Add($"first build (restore + seal): {build.Elapsed.TotalSeconds:0.0} s");
        Check(FirstBuild);
    }

    public ValueTask DisposeAsync()
    {
        Work.Dispose();

        // The packages this run restored into the global packages folder carry this run's unique version: remove them.
        string packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        foreach (string id in new[] { "modelseal", "modelseal.onnxruntime", "modelseal.build" })
        {
            string directory = Path.Combine(packages, id, Version);
            try
            {
                if (Directory.Exists(directory))
                {
                    Directory.Delete(directory, recursive: true);
                }
            }
            catch (IOException)
            {
            }
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>A fresh copy of the sample next to a copy of the model, with the feed in its NuGet.config.</summary>
    public void CopySample(string appDirectory, string modelsDirectory)
    {
        string sample = Path.Combine(RepoPaths.Root, "samples", "SealedApp");
        Directory.CreateDirectory(appDirectory);
        foreach (string file in new[] { "SealedApp.csproj", "Program.cs", "Directory.Build.props", "Directory.Packages.props" })
        {
            File.Copy(Path.Combine(sample, file), Path.Combine(appDirectory, file));
        }

        Directory.CreateDirectory(modelsDirectory);
        File.Copy(RepoPaths.SampleModel, Path.Combine(modelsDirectory, "ch_ppocr_mobile_v2.0_cls_infer.onnx"), overwrite: true);
        File.WriteAllText(Path.Combine(appDirectory, "Directory.Build.targets"), """
            <Project>
              <!-- Added after ModelSeal.Build's targets, in three spellings of the path: all must be removed. -->
              <ItemGroup>
                <Content Include="$(MSBuildThisFileDirectory)../models/ch_ppocr_mobile_v2.0_cls_infer.onnx" CopyToOutputDirectory="Always" CopyToPublishDirectory="Always" />
                <None Include="../models/ch_ppocr_mobile_v2.0_cls_infer.onnx" CopyToOutputDirectory="PreserveNewest" Link="plain/model.onnx" />
                <EmbeddedResource Include="../models/../models/ch_ppocr_mobile_v2.0_cls_infer.onnx" />
                <MauiAsset Include="../models/ch_ppocr_mobile_v2.0_cls_infer.onnx" LogicalName="model.onnx" />
                <AndroidAsset Include="../models/ch_ppocr_mobile_v2.0_cls_infer.onnx" />
              </ItemGroup>
              <!-- For the MSEAL009 test: a target that sneaks the plaintext back in after ModelSeal removed it. -->
              <Target Name="SneakPlaintextIn" AfterTargets="ModelSealIncludeSealedModels" Condition="'$(SneakPlaintext)' == 'true'">
                <ItemGroup>
                  <None Include="../models/ch_ppocr_mobile_v2.0_cls_infer.onnx" CopyToOutputDirectory="PreserveNewest" />
                </ItemGroup>
              </Target>
            </Project>
            """);
        File.WriteAllText(Path.Combine(appDirectory, "NuGet.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="modelseal-test-feed" value="{Feed}" />
                {string.Join("\n    ", UpstreamSources().Select((s, i) => $"<add key=\"upstream{i}\" value=\"{s}\" />"))}
              </packageSources>
            </configuration>
            """);
    }

    public Task<Dotnet.Result> BuildAsync(string appDirectory, params string[] extra) =>
        Dotnet.RunAsync(appDirectory, TimeSpan.FromMinutes(5), ["build", "-p:ModelSealPackageVersion=" + Version, "-nodeReuse:false", .. extra]);

    public static void Check(Dotnet.Result result)
    {
        if (result.ExitCode != 0)
        {
            Assert.Fail(result.ToString());
        }
    }

    /// <summary>The package sources this machine restores from (the user's NuGet.Config), for everything but ModelSeal.</summary>
    private static List<string> UpstreamSources()
    {
        string config = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "NuGet", "NuGet.Config");
        var sources = new List<string>();
        if (File.Exists(config))
        {
            System.Xml.Linq.XDocument document = System.Xml.Linq.XDocument.Load(config);
            foreach (System.Xml.Linq.XElement add in System.Xml.Linq.Extensions.Elements(document.Descendants("packageSources"), "add"))
            {
                if (add.Attribute("value")?.Value is { Length: > 0 } value)
                {
                    sources.Add(System.Security.SecurityElement.Escape(value));
                }
            }
        }

        if (sources.Count == 0)
        {
            sources.Add("https://api.nuget.org/v3/index.json");
        }

        return sources;
    }
}

/// <summary>The packages, installed into a fresh project from a local feed, end to end.</summary>
public sealed partial class EndToEndTests(PackagedSampleFixture fixture) : IClassFixture<PackagedSampleFixture>
{
    private const string SealedName = "classifier.onnx.mseal";

    private static readonly Lazy<string> ExpectedScores = new(() => ExpectedInference.Scores(RepoPaths.SampleModel));

    private static void Log(string text) => TestContext.Current.TestOutputHelper?.WriteLine(text);

    [Fact]
    public async Task Build_output_has_the_sealed_model_and_no_plaintext()
    {
        Log(string.Join('\n', fixture.Timings));
        Assert.Contains("ModelSeal: sealed", fixture.FirstBuild.Output, StringComparison.Ordinal);
        string sealedPath = Path.Combine(fixture.BinDirectory, SealedName);
        Assert.True(File.Exists(sealedPath), fixture.FirstBuild.ToString());
        await using (FileStream file = File.OpenRead(sealedPath))
        {
            SealedModelHeader header = await SealedModelHeader.ReadAsync(file, TestContext.Current.CancellationToken);
            Assert.Equal(("classifier", "1", ModelContentType.Onnx), (header.ModelId, header.ModelVersion, header.ContentType));
        }

        Assert.False(File.Exists(Path.Combine(fixture.BinDirectory, "plain", "model.onnx")));
        Assert.Empty(Plaintext.FilesContaining(Path.Combine(fixture.App, "bin"), Plaintext.Prefix(fixture.ModelPath)));
    }

    [Fact]
    public async Task The_app_loads_the_sealed_model_from_next_to_it_and_runs_inference()
    {
        Dotnet.Result run = await Dotnet.RunAsync(fixture.App, TimeSpan.FromMinutes(1), Path.Combine(fixture.BinDirectory, "SealedApp.dll"), fixture.KeyFile);
        PackagedSampleFixture.Check(run);
        Log(run.Output);
        Assert.Contains("model classifier version 1", run.Output, StringComparison.Ordinal);
        Assert.Contains("shape [1, 2]", run.Output, StringComparison.Ordinal);
        Assert.Contains(ExpectedScores.Value, run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Publish_output_has_the_sealed_model_and_no_plaintext()
    {
        string publish = fixture.Work.Sub("publish");
        var watch = Stopwatch.StartNew();
        Dotnet.Result result = await Dotnet.RunAsync(fixture.App, TimeSpan.FromMinutes(5), "publish", "-p:ModelSealPackageVersion=" + fixture.Version, "-nodeReuse:false", "-o", publish);
        Log($"publish: {watch.Elapsed.TotalSeconds:0.0} s");
        PackagedSampleFixture.Check(result);
        Assert.True(File.Exists(Path.Combine(publish, SealedName)), result.ToString());
        Assert.Empty(Plaintext.FilesContaining(publish, Plaintext.Prefix(fixture.ModelPath)));
        Assert.Empty(Plaintext.FilesContaining(Path.Combine(fixture.App, "bin"), Plaintext.Prefix(fixture.ModelPath)));
    }

    [Fact]
    public async Task A_second_build_does_not_reseal_touching_the_model_does_and_clean_removes_the_sealed_files()
    {
        // A project of its own: this test changes timestamps and cleans.
        string app = fixture.Work.Sub("lifecycle", "SealedApp");
        string model = fixture.Work.Sub("lifecycle", "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx");
        fixture.CopySample(app, fixture.Work.Sub("lifecycle", "models"));
        File.SetLastWriteTimeUtc(model, DateTime.UtcNow.AddMinutes(-10));
        PackagedSampleFixture.Check(await fixture.BuildAsync(app));
        string intermediate = Path.Combine(app, "obj", "Debug", "net10.0", "modelseal", SealedName);
        string output = Path.Combine(app, "bin", "Debug", "net10.0", SealedName);
        DateTime sealedAt = File.GetLastWriteTimeUtc(intermediate), copiedAt = File.GetLastWriteTimeUtc(output);
        byte[] firstSeal = File.ReadAllBytes(intermediate);

        Dotnet.Result second = await fixture.BuildAsync(app);
        PackagedSampleFixture.Check(second);
        Assert.DoesNotContain("ModelSeal: sealed", second.Output, StringComparison.Ordinal);
        Assert.Equal(sealedAt, File.GetLastWriteTimeUtc(intermediate));
        Assert.Equal(copiedAt, File.GetLastWriteTimeUtc(output));
        Assert.Equal(firstSeal, File.ReadAllBytes(intermediate));

        File.SetLastWriteTimeUtc(model, DateTime.UtcNow);
        Dotnet.Result third = await fixture.BuildAsync(app);
        PackagedSampleFixture.Check(third);
        Assert.Contains("ModelSeal: sealed", third.Output, StringComparison.Ordinal);
        Assert.True(File.GetLastWriteTimeUtc(intermediate) > sealedAt, third.ToString());
        Assert.NotEqual(firstSeal, File.ReadAllBytes(intermediate)); // a new salt: really sealed again
        Assert.Equal(File.ReadAllBytes(intermediate), File.ReadAllBytes(output));

        Dotnet.Result clean = await Dotnet.RunAsync(app, TimeSpan.FromMinutes(3), "clean", "-p:ModelSealPackageVersion=" + fixture.Version, "-nodeReuse:false");
        PackagedSampleFixture.Check(clean);
        Assert.False(File.Exists(intermediate), clean.ToString());
        Assert.False(File.Exists(output), clean.ToString());
    }

    [Fact]
    public async Task No_key_source_fails_the_build_with_MSEAL001()
    {
        // Another configuration of the same project: nothing sealed yet there, so the sealing target runs.
        Dotnet.Result result = await fixture.BuildAsync(fixture.App, "-c", "NoKey", "-p:ModelSealKeyFile=", "-p:ModelSealGenerateKeyFile=false");
        Assert.NotEqual(0, result.ExitCode);
        Assert.Matches(ErrorLine(), result.Output);
        Assert.False(File.Exists(Path.Combine(fixture.App, "bin", "NoKey", "net10.0", SealedName)));
    }

    [Fact]
    public async Task A_plaintext_model_added_back_by_a_later_target_fails_the_build_with_MSEAL009()
    {
        Dotnet.Result result = await fixture.BuildAsync(fixture.App, "-c", "Sneak", "-p:SneakPlaintext=true");
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("error MSEAL009", result.Output, StringComparison.Ordinal);
        Assert.Empty(Plaintext.FilesContaining(Path.Combine(fixture.App, "bin", "Sneak"), Plaintext.Prefix(fixture.ModelPath)));
    }

    [Fact]
    public async Task As_a_MauiAsset_the_sealed_model_has_its_logical_name_and_the_plaintext_is_in_no_asset_group()
    {
        // No MAUI workload here: ModelSealAssetItemType=MauiAsset selects the MAUI path; the items are inspected
        // after ModelSeal's target ran (the plaintext was listed as MauiAsset and AndroidAsset too).
        Dotnet.Result result = await Dotnet.RunAsync(
            fixture.App,
            TimeSpan.FromMinutes(3),
            "msbuild",
            "-t:ModelSealIncludeSealedModels",
            "-getItem:MauiAsset",
            "-getItem:AndroidAsset",
            "-getItem:Content",
            "-p:Configuration=MauiCheck",
            "-p:ModelSealAssetItemType=MauiAsset",
            "-p:ModelSealPackageVersion=" + fixture.Version,
            "-nodeReuse:false");
        PackagedSampleFixture.Check(result);
        using var json = System.Text.Json.JsonDocument.Parse(result.Output[result.Output.IndexOf('{', StringComparison.Ordinal)..]);
        System.Text.Json.JsonElement items = json.RootElement.GetProperty("Items");
        var maui = items.GetProperty("MauiAsset").EnumerateArray().ToList();
        var asset = Assert.Single(maui);
        Assert.EndsWith(Path.Combine("obj", "MauiCheck", "net10.0", "modelseal", SealedName), asset.GetProperty("FullPath").GetString(), StringComparison.Ordinal);
        Assert.Equal(SealedName, asset.GetProperty("LogicalName").GetString());
        Assert.False(items.TryGetProperty("AndroidAsset", out System.Text.Json.JsonElement android) && android.GetArrayLength() > 0, result.Output);
        Assert.DoesNotContain(
            items.TryGetProperty("Content", out System.Text.Json.JsonElement content) ? content.EnumerateArray().Select(c => c.GetProperty("FullPath").GetString()) : [],
            path => path!.EndsWith(".onnx", StringComparison.Ordinal) || path.EndsWith(SealedName, StringComparison.Ordinal));
    }

    [Fact]
    public async Task NativeAot_publish_has_no_ModelSeal_warnings_and_the_native_binary_runs_inference()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux() && System.Runtime.InteropServices.RuntimeInformation.OSArchitecture == System.Runtime.InteropServices.Architecture.X64, "the NativeAOT check publishes for linux-x64");
        string publish = fixture.Work.Sub("aot");
        var watch = Stopwatch.StartNew();
        Dotnet.Result result = await Dotnet.RunAsync(
            fixture.App, TimeSpan.FromMinutes(8), "publish", "-r", "linux-x64", "-p:PublishAot=true", "-p:ModelSealPackageVersion=" + fixture.Version, "-nodeReuse:false", "-o", publish);
        Log($"NativeAOT publish: {watch.Elapsed.TotalSeconds:0.0} s");
        PackagedSampleFixture.Check(result);
        string[] warnings = [.. result.Output.Split('\n').Where(l => l.Contains(": warning ", StringComparison.OrdinalIgnoreCase) || l.Contains("warning IL", StringComparison.Ordinal)).Distinct()];
        Log(warnings.Length == 0 ? "no warnings" : "warnings (not from ModelSeal):\n" + string.Join('\n', warnings));
        Assert.DoesNotContain(warnings, w => Regex.IsMatch(w.Split('[')[0], "ModelSeal", RegexOptions.IgnoreCase));

        string binary = Path.Combine(publish, "SealedApp");
        Assert.True(File.Exists(binary), result.ToString());
        Assert.False(File.Exists(Path.Combine(publish, "SealedApp.dll")), "a native binary, not IL");
        Log($"native binary: {new FileInfo(binary).Length / 1024.0 / 1024.0:0.0} MiB");
        Assert.Empty(Plaintext.FilesContaining(publish, Plaintext.Prefix(fixture.ModelPath)));

        Dotnet.Result run = await Dotnet.RunProcessAsync(binary, publish, TimeSpan.FromMinutes(1), fixture.KeyFile);
        PackagedSampleFixture.Check(run);
        Log(run.Output);
        Assert.Contains(ExpectedScores.Value, run.Output, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"error MSEAL001: No key source")]
    private static partial Regex ErrorLine();
}
