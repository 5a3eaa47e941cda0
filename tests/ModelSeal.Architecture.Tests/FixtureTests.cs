namespace ModelSeal.Architecture.Tests;

/// <summary>
/// The proof that <see cref="NamespaceGraph"/> finds cycles: tests/ModelSeal.Architecture.Tests.Fixture has namespaces
/// that depend on each other only through a method body, through the parent namespace, and through an attribute
/// against a nested generic argument in an async state machine, and an acyclic pair through a closure.
/// </summary>
public sealed class FixtureTests
{
    private static readonly NamespaceGraph Graph = NamespaceGraph.Read(Assemblies.PathOf(Assemblies.Fixture));

    [Fact]
    public void Finds_exactly_the_fixture_cycles()
    {
        string[][] found = [.. Graph.Cycles().Select(c => c.Namespaces.ToArray())];

        string[][] expected = [["Fixture", "Fixture.C"], ["Fixture.A", "Fixture.B"], ["Fixture.F", "Fixture.G"]];
        Assert.Equal(expected, found);
    }

    [Fact]
    public void Reports_each_cycle_as_a_path_with_an_example_reference_per_edge()
    {
        NamespaceCycle cycle = Graph.Cycles().Single(c => c.Namespaces.Contains("Fixture.A"));

        Assert.Equal(["Fixture.A -> Fixture.B -> Fixture.A"], cycle.Paths);
        Assert.Equal(
            [
                "Fixture.A -> Fixture.B: Fixture.A.X.M creates Fixture.B.Y..ctor",
                "Fixture.B -> Fixture.A: Fixture.B.Y.N calls Fixture.A.X.Z",
            ],
            cycle.Edges);
    }

    [Fact]
    public void Finds_references_to_the_parent_namespace_and_through_attributes_closures_and_state_machines()
    {
        Dictionary<(string, string), string> edges = Graph.Edges.ToDictionary(e => (e.From, e.To), e => e.Example);

        Assert.Equal("Fixture.C.Leaf.Size calls Fixture.Root.get_Base", edges[("Fixture.C", "Fixture")]);
        Assert.Equal("Fixture.G.Outer is marked with Fixture.F.MarkerAttribute", edges[("Fixture.G", "Fixture.F")]);
        Assert.Equal("Fixture.F.Caller.RunAsync (async or iterator body) instantiates Empty with Fixture.G.Outer.Inner", edges[("Fixture.F", "Fixture.G")]);
        Assert.Equal("Fixture.D.User.Describe (lambda) uses (as a generic argument) Fixture.E.Item", edges[("Fixture.D", "Fixture.E")]);
    }

    [Fact]
    public void An_acyclic_pair_is_no_cycle()
    {
        string[] pairs = [.. Graph.Edges.Where(e => e.From.StartsWith("Fixture.D", StringComparison.Ordinal) || e.From.StartsWith("Fixture.E", StringComparison.Ordinal)).Select(e => $"{e.From} -> {e.To}")];

        Assert.Equal(["Fixture.D -> Fixture.E"], pairs);
        Assert.DoesNotContain(Graph.Cycles(), c => c.Namespaces.Contains("Fixture.D") || c.Namespaces.Contains("Fixture.E"));
    }
}
