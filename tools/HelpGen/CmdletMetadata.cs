using System.Collections.Immutable;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace AsrModule.HelpGen;

/// <summary>How a parameter takes part in one parameter set ("__AllParameterSets" when it has no set).</summary>
internal sealed record ParameterSetUse(string SetName, bool Mandatory, int? Position, bool ByValue, bool ByPropertyName);

internal sealed class ParameterMeta
{
    public required string Name { get; init; }
    public required string TypeName { get; init; }
    public List<ParameterSetUse> Sets { get; } = new();
    public List<string> Aliases { get; } = new();
    public bool SupportsWildcards { get; set; }
    public bool DontShow { get; set; }
    public bool IsSwitch => TypeName == "System.Management.Automation.SwitchParameter";
}

internal sealed class CmdletMeta
{
    public required string Verb { get; init; }
    public required string Noun { get; init; }
    public string Name => Verb + "-" + Noun;
    public string? DefaultParameterSetName { get; init; }
    public bool SupportsShouldProcess { get; init; }
    public List<ParameterMeta> Parameters { get; } = new();

    /// <summary>Named parameter sets, default first; a single unnamed set when the cmdlet declares none.</summary>
    public List<string> ParameterSets()
    {
        var names = Parameters.SelectMany(p => p.Sets).Select(s => s.SetName)
            .Where(n => n != CmdletMetadata.AllSets).Distinct(StringComparer.Ordinal).ToList();
        if (names.Count == 0) return [CmdletMetadata.AllSets];
        // The default set comes first; it may have no parameter of its own (only __AllParameterSets ones).
        if (DefaultParameterSetName is { } d)
        {
            names.Remove(d);
            names.Insert(0, d);
        }
        return names;
    }
}

/// <summary>
/// Reads [Cmdlet], [Parameter], [Alias] and [SupportsWildcards] from the built module assembly with
/// System.Reflection.Metadata (shared framework), so the assembly and System.Management.Automation
/// are never loaded for execution.
/// </summary>
internal static class CmdletMetadata
{
    public const string AllSets = "__AllParameterSets";
    private const string Sma = "System.Management.Automation.";

    public static Dictionary<string, CmdletMeta> Read(string assemblyPath)
    {
        using var stream = File.OpenRead(assemblyPath);
        using var pe = new PEReader(stream);
        var md = pe.GetMetadataReader();
        var result = new Dictionary<string, CmdletMeta>(StringComparer.OrdinalIgnoreCase);
        foreach (var handle in md.TypeDefinitions)
        {
            var type = md.GetTypeDefinition(handle);
            if ((type.Attributes & System.Reflection.TypeAttributes.Abstract) != 0) continue;
            var cmdletAttr = Attributes(md, type.GetCustomAttributes()).FirstOrDefault(a => a.Name == Sma + "CmdletAttribute");
            if (cmdletAttr.Name is null) continue;
            var value = cmdletAttr.Attribute.DecodeValue(AttributeTypes.Instance);
            var named = value.NamedArguments.ToDictionary(a => a.Name ?? "", a => a.Value);
            var cmdlet = new CmdletMeta
            {
                Verb = (string)value.FixedArguments[0].Value!,
                Noun = (string)value.FixedArguments[1].Value!,
                DefaultParameterSetName = named.GetValueOrDefault("DefaultParameterSetName") as string,
                SupportsShouldProcess = named.GetValueOrDefault("SupportsShouldProcess") is true,
            };
            // Derived class first, then its bases inside this assembly (PSCmdlet and up have no parameters).
            for (TypeDefinitionHandle? current = handle; current is { } h;)
            {
                var t = md.GetTypeDefinition(h);
                foreach (var ph in t.GetProperties()) AddParameter(md, md.GetPropertyDefinition(ph), cmdlet);
                current = t.BaseType.Kind == HandleKind.TypeDefinition ? (TypeDefinitionHandle)t.BaseType : null;
            }
            if (cmdlet.SupportsShouldProcess)
            {
                foreach (var (name, alias) in new[] { ("WhatIf", "wi"), ("Confirm", "cf") })
                {
                    var p = new ParameterMeta { Name = name, TypeName = Sma + "SwitchParameter" };
                    p.Aliases.Add(alias);
                    p.Sets.Add(new ParameterSetUse(AllSets, false, null, false, false));
                    cmdlet.Parameters.Add(p);
                }
            }
            result[cmdlet.Name] = cmdlet;
        }
        return result;
    }

    private static void AddParameter(MetadataReader md, PropertyDefinition property, CmdletMeta cmdlet)
    {
        string name = md.GetString(property.Name);
        if (cmdlet.Parameters.Any(p => p.Name == name)) return; // hidden by a derived class
        ParameterMeta? parameter = null;
        foreach (var (attrName, attr) in Attributes(md, property.GetCustomAttributes()))
        {
            if (attrName != Sma + "ParameterAttribute") continue;
            parameter ??= new ParameterMeta { Name = name, TypeName = property.DecodeSignature(SignatureTypes.Instance, null).ReturnType };
            var v = attr.DecodeValue(AttributeTypes.Instance);
            var n = v.NamedArguments.ToDictionary(a => a.Name ?? "", a => a.Value);
            parameter.Sets.Add(new ParameterSetUse(
                n.GetValueOrDefault("ParameterSetName") as string ?? AllSets,
                n.GetValueOrDefault("Mandatory") is true,
                n.GetValueOrDefault("Position") is int pos && pos >= 0 ? pos : null,
                n.GetValueOrDefault("ValueFromPipeline") is true,
                n.GetValueOrDefault("ValueFromPipelineByPropertyName") is true));
            if (n.GetValueOrDefault("DontShow") is true) parameter.DontShow = true;
        }
        if (parameter is null) return;
        foreach (var (attrName, attr) in Attributes(md, property.GetCustomAttributes()))
        {
            if (attrName == Sma + "SupportsWildcardsAttribute") parameter.SupportsWildcards = true;
            if (attrName == Sma + "AliasAttribute")
            {
                var v = attr.DecodeValue(AttributeTypes.Instance);
                if (v.FixedArguments.Length == 1 && v.FixedArguments[0].Value is ImmutableArray<CustomAttributeTypedArgument<string>> names)
                    parameter.Aliases.AddRange(names.Select(a => (string)a.Value!));
            }
        }
        cmdlet.Parameters.Add(parameter);
    }

    private static IEnumerable<(string Name, CustomAttribute Attribute)> Attributes(MetadataReader md, CustomAttributeHandleCollection handles)
    {
        foreach (var h in handles)
        {
            var attr = md.GetCustomAttribute(h);
            EntityHandle owner = attr.Constructor.Kind switch
            {
                HandleKind.MemberReference => md.GetMemberReference((MemberReferenceHandle)attr.Constructor).Parent,
                HandleKind.MethodDefinition => md.GetMethodDefinition((MethodDefinitionHandle)attr.Constructor).GetDeclaringType(),
                _ => default,
            };
            yield return (owner.IsNil ? "" : TypeName(md, owner), attr);
        }
    }

    private static string TypeName(MetadataReader md, EntityHandle handle)
    {
        switch (handle.Kind)
        {
            case HandleKind.TypeReference:
            {
                var r = md.GetTypeReference((TypeReferenceHandle)handle);
                string name = md.GetString(r.Name);
                if (r.ResolutionScope.Kind == HandleKind.TypeReference) return TypeName(md, (TypeReferenceHandle)r.ResolutionScope) + "+" + name;
                string ns = md.GetString(r.Namespace);
                return ns.Length == 0 ? name : ns + "." + name;
            }
            case HandleKind.TypeDefinition:
            {
                var d = md.GetTypeDefinition((TypeDefinitionHandle)handle);
                string name = md.GetString(d.Name);
                if (d.IsNested) return TypeName(md, d.GetDeclaringType()) + "+" + name;
                string ns = md.GetString(d.Namespace);
                return ns.Length == 0 ? name : ns + "." + name;
            }
            default:
                return "";
        }
    }

    /// <summary>Type names for property signatures (System.String, System.Guid[], ...).</summary>
    private sealed class SignatureTypes : ISignatureTypeProvider<string, object?>
    {
        public static readonly SignatureTypes Instance = new();
        public string GetPrimitiveType(PrimitiveTypeCode typeCode) => "System." + typeCode;
        public string GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind) => TypeName(reader, handle);
        public string GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind) => TypeName(reader, handle);
        public string GetTypeFromSpecification(MetadataReader reader, object? genericContext, TypeSpecificationHandle handle, byte rawTypeKind) =>
            reader.GetTypeSpecification(handle).DecodeSignature(this, genericContext);
        public string GetSZArrayType(string elementType) => elementType + "[]";
        public string GetArrayType(string elementType, ArrayShape shape) => elementType + "[" + new string(',', shape.Rank - 1) + "]";
        public string GetByReferenceType(string elementType) => elementType + "&";
        public string GetPointerType(string elementType) => elementType + "*";
        public string GetPinnedType(string elementType) => elementType;
        public string GetModifiedType(string modifier, string unmodifiedType, bool isRequired) => unmodifiedType;
        public string GetFunctionPointerType(MethodSignature<string> signature) => "System.IntPtr";
        public string GetGenericMethodParameter(object? genericContext, int index) => "!!" + index;
        public string GetGenericTypeParameter(object? genericContext, int index) => "!" + index;
        public string GetGenericInstantiation(string genericType, ImmutableArray<string> typeArguments) =>
            genericType == "System.Nullable`1" ? typeArguments[0] : $"{genericType.Split('`')[0]}[{string.Join(",", typeArguments)}]";
    }

    /// <summary>Attribute blobs: every enum met here (ConfirmImpact, RemotingCapability) is int-based.</summary>
    private sealed class AttributeTypes : ICustomAttributeTypeProvider<string>
    {
        public static readonly AttributeTypes Instance = new();
        public string GetPrimitiveType(PrimitiveTypeCode typeCode) => "System." + typeCode;
        public string GetSystemType() => "System.Type";
        public string GetSZArrayType(string elementType) => elementType + "[]";
        public string GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind) => TypeName(reader, handle);
        public string GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind) => TypeName(reader, handle);
        public string GetTypeFromSerializedName(string name) => name;
        public PrimitiveTypeCode GetUnderlyingEnumType(string type) => PrimitiveTypeCode.Int32;
        public bool IsSystemType(string type) => type == "System.Type";
    }
}
