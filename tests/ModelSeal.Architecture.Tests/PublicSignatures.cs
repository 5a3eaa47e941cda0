using Mono.Cecil;

namespace ModelSeal.Architecture.Tests;

/// <summary>
/// The types that the public surface of one compiled assembly names, read from its metadata with Mono.Cecil: of every
/// type visible outside the assembly (public, or nested public or protected in such a type), its base type,
/// interfaces and generic constraints, and of its public and protected members the field, property (with indexer
/// parameters), event, return and parameter types and the constraints of generic methods. Inside each, generic
/// arguments, arrays, by-refs, pointers, modifiers and function pointers are followed down to the named types. Method
/// bodies, attributes and private or internal members are not part of the surface and are not read.
/// </summary>
internal static class PublicSignatures
{
    /// <summary>
    /// Each place where the public surface names a type of namespace <paramref name="namespaceName"/> or a namespace
    /// below it, as <c>Type::Member (position): named type</c>, in ordinal order.
    /// </summary>
    public static IReadOnlyList<string> Mentioning(string assemblyPath, string namespaceName)
    {
        using ModuleDefinition module = ModuleDefinition.ReadModule(assemblyPath, new ReaderParameters { ReadSymbols = false });
        var found = new SortedSet<string>(StringComparer.Ordinal);
        foreach (TypeDefinition type in module.GetTypes().Where(IsVisible))
        {
            void Check(string member, string position, TypeReference? reference)
            {
                foreach (TypeReference named in Named(reference).Where(t => InNamespace(t, namespaceName)))
                {
                    found.Add($"{type.FullName}{member} ({position}): {named.FullName}");
                }
            }

            Check(string.Empty, "base type", type.BaseType);
            foreach (InterfaceImplementation implemented in type.Interfaces)
            {
                Check(string.Empty, "interface", implemented.InterfaceType);
            }

            CheckConstraints(string.Empty, type.GenericParameters, Check);
            foreach (FieldDefinition field in type.Fields.Where(f => f.IsPublic || f.IsFamily || f.IsFamilyOrAssembly))
            {
                Check($"::{field.Name}", "field", field.FieldType);
            }

            foreach (PropertyDefinition property in type.Properties.Where(p => IsVisible(p.GetMethod) || IsVisible(p.SetMethod)))
            {
                Check($"::{property.Name}", "property", property.PropertyType);
                foreach (ParameterDefinition parameter in property.Parameters)
                {
                    Check($"::{property.Name}", $"index {parameter.Name}", parameter.ParameterType);
                }
            }

            foreach (EventDefinition @event in type.Events.Where(e => IsVisible(e.AddMethod) || IsVisible(e.RemoveMethod)))
            {
                Check($"::{@event.Name}", "event", @event.EventType);
            }

            // Accessors are covered by their property or event above.
            foreach (MethodDefinition method in type.Methods.Where(m => IsVisible(m) && !m.IsGetter && !m.IsSetter && !m.IsAddOn && !m.IsRemoveOn))
            {
                Check($"::{method.Name}", "return", method.ReturnType);
                foreach (ParameterDefinition parameter in method.Parameters)
                {
                    Check($"::{method.Name}", $"parameter {parameter.Name}", parameter.ParameterType);
                }

                CheckConstraints($"::{method.Name}", method.GenericParameters, Check);
            }
        }

        return [.. found];
    }

    private static void CheckConstraints(string member, IEnumerable<GenericParameter> parameters, Action<string, string, TypeReference?> check)
    {
        foreach (GenericParameter parameter in parameters)
        {
            foreach (GenericParameterConstraint constraint in parameter.Constraints)
            {
                check(member, $"constraint on {parameter.Name}", constraint.ConstraintType);
            }
        }
    }

    private static bool IsVisible(TypeDefinition type) =>
        type.DeclaringType is null
            ? type.IsPublic
            : (type.IsNestedPublic || type.IsNestedFamily || type.IsNestedFamilyOrAssembly) && IsVisible(type.DeclaringType);

    private static bool IsVisible(MethodDefinition? method) => method is not null && (method.IsPublic || method.IsFamily || method.IsFamilyOrAssembly);

    /// <summary>The named types (definitions or references, never constructed ones) that <paramref name="reference"/> is built from.</summary>
    private static IEnumerable<TypeReference> Named(TypeReference? reference)
    {
        switch (reference)
        {
            case null:
            case GenericParameter: // its constraints are checked where it is declared
                yield break;
            case GenericInstanceType instance:
                foreach (TypeReference named in Named(instance.ElementType).Concat(instance.GenericArguments.SelectMany(Named)))
                {
                    yield return named;
                }

                yield break;
            case FunctionPointerType pointer:
                foreach (TypeReference named in Named(pointer.ReturnType).Concat(pointer.Parameters.SelectMany(p => Named(p.ParameterType))))
                {
                    yield return named;
                }

                yield break;
            case IModifierType modified:
                foreach (TypeReference named in Named(modified.ModifierType).Concat(Named(modified.ElementType)))
                {
                    yield return named;
                }

                yield break;
            case TypeSpecification specification: // arrays, by-refs, pointers, pinned, sentinels
                foreach (TypeReference named in Named(specification.ElementType))
                {
                    yield return named;
                }

                yield break;
            default:
                yield return reference;
                yield break;
        }
    }

    private static bool InNamespace(TypeReference type, string namespaceName)
    {
        while (type.DeclaringType is not null)
        {
            type = type.DeclaringType;
        }

        return type.Namespace == namespaceName || type.Namespace.StartsWith(namespaceName + ".", StringComparison.Ordinal);
    }
}
