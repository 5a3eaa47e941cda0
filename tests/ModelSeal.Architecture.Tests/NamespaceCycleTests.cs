namespace ModelSeal.Architecture.Tests;

/// <summary>Dependencies point one way: no namespace of a src assembly depends, even indirectly, on itself (issue 11).</summary>
public sealed class NamespaceCycleTests
{
    public static TheoryData<string> SourceAssemblies => [.. Assemblies.Source];

    [Theory]
    [MemberData(nameof(SourceAssemblies))]
    public void Has_no_namespace_cycle(string assembly)
    {
        NamespaceGraph graph = NamespaceGraph.Read(Assemblies.PathOf(assembly));

        IReadOnlyList<NamespaceCycle> cycles = graph.Cycles();

        Assert.True(cycles.Count == 0, $"{assembly} has {cycles.Count} namespace cycle(s):{Environment.NewLine}{string.Concat(cycles.Select(c => $"  {c}"))}");
    }

    [Fact]
    public void Every_src_project_is_checked()
    {
        Assert.Superset(new HashSet<string>(["ModelSeal", "ModelSeal.Build", "ModelSeal.Cli", "ModelSeal.Client", "ModelSeal.Client.Pkcs11", "ModelSeal.OnnxRuntime", "ModelSeal.Server"]), new HashSet<string>(Assemblies.Source));
    }
}
