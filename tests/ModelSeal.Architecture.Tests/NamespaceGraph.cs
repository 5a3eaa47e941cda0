using System.Text.RegularExpressions;
using Mono.Cecil;
using Mono.Cecil.Cil;

namespace ModelSeal.Architecture.Tests;

/// <summary>
/// The namespace dependency graph of one compiled assembly, read from its IL with Mono.Cecil: an edge A -> B when code
/// of namespace A references a type of namespace B defined in the same assembly, anywhere: base types, interfaces,
/// fields, properties, events, method signatures, generic arguments and constraints, custom attributes (and their
/// <c>typeof</c> arguments), overrides, local variables, catch clauses and every method-body operand (types, methods
/// and fields, through generic instantiations, arrays, nested types and the signatures of the members referenced).
/// A parent namespace counts like any other (C# resolves names in it without a using).
/// Compiler-generated nested types (closures, state machines, local functions) belong to the namespace of their
/// top-level declaring type; compiler-generated top-level types (<c>&lt;PrivateImplementationDetails&gt;</c>,
/// anonymous types, embedded attributes) belong to no namespace: references to them are no edge.
/// </summary>
internal sealed class NamespaceGraph
{
    private readonly SortedDictionary<string, SortedDictionary<string, string>> _edges = new(StringComparer.Ordinal);

    private NamespaceGraph(string assemblyName) => AssemblyName = assemblyName;

    public string AssemblyName { get; }

    /// <summary>Every edge with the first reference found for it (an example, in metadata order).</summary>
    public IEnumerable<(string From, string To, string Example)> Edges =>
        _edges.SelectMany(from => from.Value.Select(to => (from.Key, to.Key, to.Value)));

    public static NamespaceGraph Read(string assemblyPath)
    {
        using var resolver = new DefaultAssemblyResolver();
        resolver.AddSearchDirectory(Path.GetDirectoryName(Path.GetFullPath(assemblyPath)));
        using ModuleDefinition module = ModuleDefinition.ReadModule(assemblyPath, new ReaderParameters { AssemblyResolver = resolver, ReadSymbols = false });
        var graph = new NamespaceGraph(module.Assembly.Name.Name);
        var walker = new Walker(module, graph);
        foreach (TypeDefinition type in module.GetTypes())
        {
            walker.Visit(type);
        }

        return graph;
    }

    /// <summary>The namespace cycles: the strongly connected components of more than one namespace, in name order.</summary>
    public IReadOnlyList<NamespaceCycle> Cycles()
    {
        var cycles = new List<NamespaceCycle>();
        foreach (IReadOnlyList<string> component in StronglyConnectedComponents().Where(c => c.Count > 1))
        {
            var members = new HashSet<string>(component, StringComparer.Ordinal);
            var paths = new SortedSet<string>(StringComparer.Ordinal);
            foreach (string start in component)
            {
                paths.Add(string.Join(" -> ", ShortestCycle(start, members)));
            }

            var edges = Edges.Where(e => members.Contains(e.From) && members.Contains(e.To)).Select(e => $"{e.From} -> {e.To}: {e.Example}").ToList();
            cycles.Add(new NamespaceCycle(component, [.. paths], edges));
        }

        return cycles;
    }

    private void Add(string from, string to, string example)
    {
        if (!_edges.TryGetValue(from, out SortedDictionary<string, string>? targets))
        {
            _edges[from] = targets = new SortedDictionary<string, string>(StringComparer.Ordinal);
        }

        targets.TryAdd(to, example);
    }

    private IEnumerable<string> Successors(string node) =>
        _edges.TryGetValue(node, out SortedDictionary<string, string>? targets) ? targets.Keys : Enumerable.Empty<string>();

    /// <summary>Tarjan's algorithm (iterative), members of each component sorted, components sorted by first member.</summary>
    private List<IReadOnlyList<string>> StronglyConnectedComponents()
    {
        var nodes = new SortedSet<string>(_edges.Keys.Concat(_edges.Values.SelectMany(t => t.Keys)), StringComparer.Ordinal);
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var low = new Dictionary<string, int>(StringComparer.Ordinal);
        var onStack = new HashSet<string>(StringComparer.Ordinal);
        var stack = new Stack<string>();
        var components = new List<IReadOnlyList<string>>();
        foreach (string root in nodes)
        {
            if (index.ContainsKey(root))
            {
                continue;
            }

            var work = new Stack<(string Node, IEnumerator<string> Next)>();
            void Open(string node)
            {
                index[node] = low[node] = index.Count;
                stack.Push(node);
                onStack.Add(node);
                work.Push((node, Successors(node).GetEnumerator()));
            }

            Open(root);
            while (work.Count > 0)
            {
                (string node, IEnumerator<string> next) = work.Peek();
                if (next.MoveNext())
                {
                    string successor = next.Current;
                    if (!index.TryGetValue(successor, out int successorIndex))
                    {
                        Open(successor);
                    }
                    else if (onStack.Contains(successor))
                    {
                        low[node] = Math.Min(low[node], successorIndex);
                    }

                    continue;
                }

                work.Pop();
                if (work.Count > 0)
                {
                    string parent = work.Peek().Node;
                    low[parent] = Math.Min(low[parent], low[node]);
                }

                if (low[node] == index[node])
                {
                    var component = new List<string>();
                    string member;
                    do
                    {
                        member = stack.Pop();
                        onStack.Remove(member);
                        component.Add(member);
                    }
                    while (member != node);
                    component.Sort(StringComparer.Ordinal);
                    components.Add(component);
                }
            }
        }

        components.Sort((a, b) => string.CompareOrdinal(a[0], b[0]));
        return components;
    }

    /// <summary>A shortest path from <paramref name="start"/> back to itself inside the component (breadth first).</summary>
    private List<string> ShortestCycle(string start, HashSet<string> component)
    {
        var previous = new Dictionary<string, string>(StringComparer.Ordinal);
        var queue = new Queue<string>();
        queue.Enqueue(start);
        while (queue.Count > 0)
        {
            string node = queue.Dequeue();
            foreach (string successor in Successors(node).Where(component.Contains))
            {
                if (successor == start)
                {
                    var path = new List<string> { start };
                    for (string at = node; at != start; at = previous[at])
                    {
                        path.Add(at);
                    }

                    path.Add(start);
                    path.Reverse();
                    return Rotate(path);
                }

                if (previous.TryAdd(successor, node))
                {
                    queue.Enqueue(successor);
                }
            }
        }

        throw new InvalidOperationException($"{start} is on no cycle of its component.");
    }

    /// <summary>The same cycle starting at its smallest namespace, so that one cycle is reported once.</summary>
    private static List<string> Rotate(List<string> cycle)
    {
        List<string> ring = cycle[..^1];
        int first = ring.IndexOf(ring.Min(StringComparer.Ordinal)!);
        List<string> rotated = [.. ring[first..], .. ring[..first]];
        rotated.Add(rotated[0]);
        return rotated;
    }

    /// <summary>Visits every type reference of a module's types and adds the edges they make.</summary>
    private sealed class Walker(ModuleDefinition module, NamespaceGraph graph)
    {
        /// <summary><c>&lt;Source&gt;k__…</c>: a name the C# compiler derived from the source member <c>Source</c>.</summary>
        private static readonly Regex GeneratedName = new(@"^<([^>]+)>([a-z])__", RegexOptions.CultureInvariant);

        public void Visit(TypeDefinition type)
        {
            if (NamespaceOf(type) is not { } from)
            {
                return;
            }

            string site = Display(type);
            Attributes(type, from, site);
            Use(type.BaseType, from, site, "derives from");
            foreach (InterfaceImplementation implementation in type.Interfaces)
            {
                Use(implementation.InterfaceType, from, site, "implements");
                Attributes(implementation, from, site);
            }

            GenericParameters(type, from, site);
            foreach (FieldDefinition field in type.Fields)
            {
                string member = Site(type, field.Name);
                Use(field.FieldType, from, member, "is of type");
                Attributes(field, from, member);
            }

            foreach (PropertyDefinition property in type.Properties)
            {
                string member = Site(type, property.Name);
                Use(property.PropertyType, from, member, "is of type");
                Attributes(property, from, member);
                foreach (ParameterDefinition parameter in property.Parameters)
                {
                    Use(parameter.ParameterType, from, member, "takes");
                }
            }

            foreach (EventDefinition @event in type.Events)
            {
                string member = Site(type, @event.Name);
                Use(@event.EventType, from, member, "is of type");
                Attributes(@event, from, member);
            }

            foreach (MethodDefinition method in type.Methods)
            {
                Method(method, from, Site(type, method.Name));
            }
        }

        private void Method(MethodDefinition method, string from, string site)
        {
            Attributes(method, from, site);
            Use(method.ReturnType, from, site, "returns");
            Attributes(method.MethodReturnType, from, site);
            foreach (ParameterDefinition parameter in method.Parameters)
            {
                Use(parameter.ParameterType, from, site, "takes");
                Attributes(parameter, from, site);
            }

            GenericParameters(method, from, site);
            foreach (MethodReference overridden in method.Overrides)
            {
                UseMethod(overridden, from, site, "overrides");
            }

            if (!method.HasBody)
            {
                return;
            }

            MethodBody body = method.Body;
            foreach (VariableDefinition variable in body.Variables)
            {
                Use(variable.VariableType, from, site, "has a local of");
            }

            foreach (ExceptionHandler handler in body.ExceptionHandlers)
            {
                Use(handler.CatchType, from, site, "catches");
            }

            foreach (Instruction instruction in body.Instructions)
            {
                switch (instruction.Operand)
                {
                    case MethodReference target:
                        UseMethod(target, from, site, instruction.OpCode.Code == Code.Newobj ? "creates" : "calls");
                        break;
                    case FieldReference target:
                        Use(target.DeclaringType, from, site, $"uses field {target.Name} of");
                        Use(target.FieldType, from, site, "uses");
                        break;
                    case TypeReference target:
                        Use(target, from, site, "uses");
                        break;
                    case CallSite target:
                        Use(target.ReturnType, from, site, "calls a pointer returning");
                        foreach (ParameterDefinition parameter in target.Parameters)
                        {
                            Use(parameter.ParameterType, from, site, "calls a pointer taking");
                        }

                        break;
                }
            }
        }

        private void UseMethod(MethodReference target, string from, string site, string how)
        {
            if (target is GenericInstanceMethod instance)
            {
                foreach (TypeReference argument in instance.GenericArguments)
                {
                    Use(argument, from, site, $"instantiates {target.Name} with");
                }

                target = instance.ElementMethod;
            }

            Use(target.DeclaringType, from, site, how, target.Name);
            Use(target.ReturnType, from, site, $"uses (as the return type of {target.Name})");
            foreach (ParameterDefinition parameter in target.Parameters)
            {
                Use(parameter.ParameterType, from, site, $"uses (as a parameter of {target.Name})");
            }
        }

        private void GenericParameters(IGenericParameterProvider provider, string from, string site)
        {
            foreach (GenericParameter parameter in provider.GenericParameters)
            {
                Attributes(parameter, from, site);
                foreach (GenericParameterConstraint constraint in parameter.Constraints)
                {
                    Use(constraint.ConstraintType, from, site, "constrains a type parameter to");
                    Attributes(constraint, from, site);
                }
            }
        }

        private void Attributes(ICustomAttributeProvider provider, string from, string site)
        {
            if (!provider.HasCustomAttributes)
            {
                return;
            }

            foreach (CustomAttribute attribute in provider.CustomAttributes)
            {
                Use(attribute.AttributeType, from, site, "is marked with");
                UseMethod(attribute.Constructor, from, site, "is marked with");
                IEnumerable<CustomAttributeArgument> arguments = attribute.ConstructorArguments
                    .Concat(attribute.Fields.Select(f => f.Argument))
                    .Concat(attribute.Properties.Select(p => p.Argument));
                foreach (CustomAttributeArgument argument in arguments)
                {
                    Argument(argument, from, site);
                }
            }
        }

        private void Argument(CustomAttributeArgument argument, string from, string site)
        {
            Use(argument.Type, from, site, "has an attribute argument of");
            switch (argument.Value)
            {
                case TypeReference type:
                    Use(type, from, site, "names in an attribute");
                    break;
                case CustomAttributeArgument boxed:
                    Argument(boxed, from, site);
                    break;
                case CustomAttributeArgument[] elements:
                    foreach (CustomAttributeArgument element in elements)
                    {
                        Argument(element, from, site);
                    }

                    break;
            }
        }

        /// <summary>Adds the edge to the namespace of <paramref name="target"/> and of every type it is made of.</summary>
        private void Use(TypeReference? target, string from, string site, string how, string? member = null)
        {
            switch (target)
            {
                case null or GenericParameter:
                    return;
                case GenericInstanceType instance:
                    Use(instance.ElementType, from, site, how, member);
                    foreach (TypeReference argument in instance.GenericArguments)
                    {
                        Use(argument, from, site, "uses (as a generic argument)");
                    }

                    return;
                case IModifierType modified:
                    Use(modified.ModifierType, from, site, how);
                    Use(modified.ElementType, from, site, how, member);
                    return;
                case FunctionPointerType pointer:
                    Use(pointer.ReturnType, from, site, how);
                    foreach (ParameterDefinition parameter in pointer.Parameters)
                    {
                        Use(parameter.ParameterType, from, site, how);
                    }

                    return;
                case TypeSpecification specification:
                    Use(specification.ElementType, from, site, how, member);
                    return;
            }

            TypeDefinition? definition = target as TypeDefinition ?? (target.Scope == module ? target.Resolve() : null);
            if (definition is null || definition.Module != module || NamespaceOf(definition) is not { } to || to == from)
            {
                return;
            }

            graph.Add(from, to, $"{from}.{site} {how} {to}.{Display(definition)}{(member is null ? "" : "." + member)}");
        }

        /// <summary>The namespace a type belongs to: its top-level type's; none for compiler-generated top-level types.</summary>
        private static string? NamespaceOf(TypeDefinition type)
        {
            while (type.DeclaringType is not null)
            {
                type = type.DeclaringType;
            }

            bool generated = type.Name.StartsWith('<') || type.CustomAttributes.Any(a => a.AttributeType.FullName is
                "System.Runtime.CompilerServices.CompilerGeneratedAttribute" or "Microsoft.CodeAnalysis.EmbeddedAttribute");
            return generated ? null : type.Namespace;
        }

        /// <summary>
        /// A member as written in the source: a member of a compiler-generated type (closure, state machine, local
        /// function) or a backing field is named after the member it was generated from, e.g.
        /// <c>ServerTelemetry.ObserveReleaseAsync (lambda)</c> for <c>ServerTelemetry.&lt;&gt;c__DisplayClass19_0.&lt;ObserveReleaseAsync&gt;b__0</c>.
        /// </summary>
        private static string Site(TypeDefinition type, string member)
        {
            var generated = new List<string> { member };
            while (type.DeclaringType is not null && type.Name.StartsWith('<'))
            {
                generated.Add(type.Name);
                type = type.DeclaringType;
            }

            if (generated.Count == 1 && !member.StartsWith('<'))
            {
                return $"{Display(type)}.{member}";
            }

            foreach (string name in generated)
            {
                Match match = GeneratedName.Match(name);
                if (match.Success)
                {
                    string kind = match.Groups[2].Value switch
                    {
                        "b" => " (lambda)",
                        "d" => " (async or iterator body)",
                        "g" => " (local function)",
                        _ => "",
                    };
                    return $"{Display(type)}.{match.Groups[1].Value}{kind}";
                }
            }

            return $"{Display(type)}.{member} (compiler-generated)";
        }

        /// <summary>The type's name within its namespace, nested types joined by dots.</summary>
        private static string Display(TypeDefinition type) =>
            type.DeclaringType is null ? type.Name : $"{Display(type.DeclaringType)}.{type.Name}";
    }
}

/// <summary>Namespaces that depend on each other (a strongly connected component), with its cycles and edges.</summary>
internal sealed record NamespaceCycle(IReadOnlyList<string> Namespaces, IReadOnlyList<string> Paths, IReadOnlyList<string> Edges)
{
    public override string ToString() =>
        $"{{{string.Join(", ", Namespaces)}}}{Environment.NewLine}" +
        $"    cycles:{Environment.NewLine}{string.Concat(Paths.Select(p => $"      {p}{Environment.NewLine}"))}" +
        $"    edges (one example reference each):{Environment.NewLine}{string.Concat(Edges.Select(e => $"      {e}{Environment.NewLine}"))}";
}
