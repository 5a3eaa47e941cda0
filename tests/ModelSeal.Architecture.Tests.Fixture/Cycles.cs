// Namespaces with known dependencies, the analyser's proof (tests/ModelSeal.Architecture.Tests/FixtureTests.cs).
// Expected cycles: Fixture.A <-> Fixture.B, Fixture <-> Fixture.C, Fixture.F <-> Fixture.G. Fixture.D -> Fixture.E
// is acyclic. Nothing here has a `using`: every dependency is either fully qualified or resolved through a parent
// namespace, as C# allows.

namespace Fixture.A
{
    /// <summary>Depends on Fixture.B only inside a method body.</summary>
    public class X
    {
        public static int M()
        {
            object y = new B.Y();
            return y.GetHashCode();
        }

        public static int Z() => 1;
    }
}

namespace Fixture.B
{
    /// <summary>Depends on Fixture.A only inside a method body.</summary>
    public class Y
    {
        public static int N() => A.X.Z() + 1;
    }
}

namespace Fixture
{
    /// <summary>Depends on its child namespace Fixture.C in a method body.</summary>
    public static class Root
    {
        public static int Base => 1;

        public static int Count() => C.Leaf.Size();
    }
}

namespace Fixture.C
{
    /// <summary>Depends on its parent namespace without a using: <c>Root</c> is found in Fixture.</summary>
    public static class Leaf
    {
        public static int Size() => Root.Base + 1;
    }
}

namespace Fixture.D
{
    /// <summary>Depends on Fixture.E only through a generic argument inside a lambda (a compiler-generated closure).</summary>
    public static class User
    {
        public static System.Func<System.Type> Describe(int seed) => () => seed > 0 ? typeof(System.Collections.Generic.List<E.Item>) : typeof(int);
    }
}

namespace Fixture.E
{
    /// <summary>Depends on nothing in the fixture: Fixture.D -> Fixture.E is acyclic.</summary>
    public sealed class Item
    {
        public static int Weight => 1;
    }
}

namespace Fixture.F
{
    /// <summary>An attribute Fixture.G is marked with.</summary>
    [System.AttributeUsage(System.AttributeTargets.Class)]
    public sealed class MarkerAttribute : System.Attribute;

    /// <summary>Depends on a nested type of Fixture.G through a generic method instantiation in an async state machine.</summary>
    public static class Caller
    {
        public static async System.Threading.Tasks.Task<int> RunAsync()
        {
            await System.Threading.Tasks.Task.Yield();
            return System.Array.Empty<G.Outer.Inner>().Length;
        }
    }
}

namespace Fixture.G
{
    /// <summary>Depends on Fixture.F only through an attribute.</summary>
    [F.Marker]
    public sealed class Outer
    {
        /// <summary>Referenced from Fixture.F as a generic argument.</summary>
        public sealed class Inner;
    }
}
