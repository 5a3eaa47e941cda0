namespace ModelSeal.Architecture.Tests;

/// <summary>The assemblies under test: the copies the project references put beside this test assembly.</summary>
internal static class Assemblies
{
    /// <summary>Every project under src/ (<see cref="NamespaceCycleTests.Every_src_project_is_checked"/> keeps this complete).</summary>
    public static readonly string[] Source = ["ModelSeal", "ModelSeal.Build", "ModelSeal.Cli", "ModelSeal.Client", "ModelSeal.OnnxRuntime", "ModelSeal.Server"];

    public const string Fixture = "ModelSeal.Architecture.Tests.Fixture";

    public static string PathOf(string name)
    {
        string path = Path.Combine(AppContext.BaseDirectory, name + ".dll");
        Assert.True(File.Exists(path), $"{path} is missing: tests/ModelSeal.Architecture.Tests should reference the project {name}.");
        return path;
    }

    /// <summary>The repository root, found by walking up to ModelSeal.slnx.</summary>
    public static string RepositoryRoot()
    {
        for (DirectoryInfo? directory = new(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "ModelSeal.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("ModelSeal.slnx not found above " + AppContext.BaseDirectory);
    }
}
