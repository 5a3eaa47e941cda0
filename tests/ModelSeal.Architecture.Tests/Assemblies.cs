using System.Reflection;

namespace ModelSeal.Architecture.Tests;

/// <summary>The assemblies under test: the copies the project references put beside this test assembly.</summary>
internal static class Assemblies
{
    public const string Fixture = "ModelSeal.Architecture.Tests.Fixture";

    /// <summary>Every project under src/ (the project file's glob, as [AssemblyMetadata("ModelSealSourceAssembly", name)]).</summary>
    public static string[] Source =>
        [.. typeof(Assemblies).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Where(a => a.Key == "ModelSealSourceAssembly")
            .Select(a => a.Value!)
            .Order(StringComparer.Ordinal)];

    /// <summary>
    /// The packaged libraries: every project under src/ whose public API is tracked (PublicAPI.Shipped.txt beside its
    /// project file; see Directory.Build.targets), as [AssemblyMetadata("ModelSealPackagedAssembly", directory)].
    /// </summary>
    public static string[] Packaged =>
        [.. typeof(Assemblies).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Where(a => a.Key == "ModelSealPackagedAssembly")
            .Select(a => Path.GetFileName(a.Value!.TrimEnd('/', '\\')))
            .Order(StringComparer.Ordinal)];

    public static string PathOf(string name)
    {
        string path = Path.Combine(AppContext.BaseDirectory, name + ".dll");
        Assert.True(File.Exists(path), $"{path} is missing: tests/ModelSeal.Architecture.Tests should reference the project {name}.");
        return path;
    }
}
