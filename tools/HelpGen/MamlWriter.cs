using System.Xml.Linq;

namespace AsrModule.HelpGen;

/// <summary>
/// Writes command help in the MAML schema Get-Help reads (the shape platyPS produces): one
/// command:command per cmdlet with details, description, syntax (one syntaxItem per parameter set),
/// parameters, inputTypes, returnValues, alertSet (notes), examples and relatedLinks.
/// </summary>
internal static class MamlWriter
{
    private static readonly XNamespace Msh = "http://msh";
    private static readonly XNamespace Maml = "http://schemas.microsoft.com/maml/2004/10";
    private static readonly XNamespace Command = "http://schemas.microsoft.com/maml/dev/command/2004/10";
    private static readonly XNamespace Dev = "http://schemas.microsoft.com/maml/dev/2004/10";
    private static readonly XNamespace MSHelp = "http://msdn.microsoft.com/mshelp";

    public static XDocument Write(IEnumerable<(CommandDoc Doc, CmdletMeta? Meta)> commands) =>
        new(new XDeclaration("1.0", "utf-8", null),
            new XElement(Msh + "helpItems",
                new XAttribute("schema", "maml"),
                new XAttribute("xmlns", Msh.NamespaceName),
                commands.Select(c => CommandElement(c.Doc, c.Meta))));

    private static XElement CommandElement(CommandDoc doc, CmdletMeta? meta)
    {
        string[] verbNoun = doc.Name.Split('-', 2);
        // Documented order for the PARAMETERS section; metadata (when given) for everything it knows.
        var parameters = doc.Parameters.Select(p => (Doc: p, Meta: meta?.Parameters.FirstOrDefault(m => string.Equals(m.Name, p.Name, StringComparison.OrdinalIgnoreCase)))).ToList();

        return new XElement(Command + "command",
            new XAttribute(XNamespace.Xmlns + "maml", Maml.NamespaceName),
            new XAttribute(XNamespace.Xmlns + "command", Command.NamespaceName),
            new XAttribute(XNamespace.Xmlns + "dev", Dev.NamespaceName),
            new XAttribute(XNamespace.Xmlns + "MSHelp", MSHelp.NamespaceName),
            new XElement(Command + "details",
                new XElement(Command + "name", doc.Name),
                new XElement(Command + "verb", verbNoun[0]),
                new XElement(Command + "noun", verbNoun.Length > 1 ? verbNoun[1] : ""),
                Description(doc.Synopsis)),
            Description(doc.Description),
            new XElement(Command + "syntax", SyntaxItems(doc, meta, parameters)),
            new XElement(Command + "parameters",
                parameters.Select(p => ParameterElement(p.Doc, p.Meta, p.Meta is null ? null : Aggregate(p.Meta)))),
            new XElement(Command + "inputTypes", Types(doc.Inputs, Command + "inputType")),
            new XElement(Command + "returnValues", Types(doc.Outputs, Command + "returnValue")),
            doc.Notes.Count == 0 ? null : new XElement(Maml + "alertSet",
                new XElement(Maml + "alert", Paras(doc.Notes))),
            new XElement(Command + "examples", doc.Examples.Select((e, i) => new XElement(Command + "example",
                new XElement(Maml + "title", $"--------- {TitleOf(e, i)} ---------"),
                new XElement(Dev + "code", e.Code),
                // The trailing empty para gives the blank line Get-Help shows between examples.
                new XElement(Dev + "remarks", Paras(e.Remarks), new XElement(Maml + "para"))))),
            new XElement(Maml + "relatedLinks", doc.Links.Select(l => new XElement(Maml + "navigationLink",
                new XElement(Maml + "linkText", l.Text),
                new XElement(Maml + "uri", l.Uri)))));
    }

    private static string TitleOf(ExampleDoc e, int index) =>
        e.Title.StartsWith("Example", StringComparison.OrdinalIgnoreCase) ? e.Title : $"Example {index + 1}: {e.Title}";

    private static IEnumerable<XElement> SyntaxItems(CommandDoc doc, CmdletMeta? meta, List<(ParameterDoc Doc, ParameterMeta? Meta)> parameters)
    {
        if (meta is null)
        {
            // No assembly: one syntax line of the documented parameters.
            yield return new XElement(Command + "syntaxItem",
                new XElement(Maml + "name", doc.Name),
                parameters.Select(p => ParameterElement(p.Doc, null, null, inSyntax: true)));
            yield break;
        }
        foreach (string set in meta.ParameterSets())
        {
            var inSet = meta.Parameters
                .Select((p, order) => (Meta: p, Order: order, Use: p.Sets.FirstOrDefault(s => s.SetName == set) ?? p.Sets.FirstOrDefault(s => s.SetName == CmdletMetadata.AllSets)))
                .Where(x => x.Use is not null && !x.Meta.DontShow)
                .OrderBy(x => x.Use!.Position ?? int.MaxValue)
                .ThenBy(x => x.Use!.Mandatory ? 0 : 1)
                .ThenBy(x => x.Meta.Name is "WhatIf" or "Confirm" ? 1 : 0)
                .ThenBy(x => x.Order);
            yield return new XElement(Command + "syntaxItem",
                new XElement(Maml + "name", doc.Name),
                inSet.Select(x => ParameterElement(
                    doc.Parameters.FirstOrDefault(d => string.Equals(d.Name, x.Meta.Name, StringComparison.OrdinalIgnoreCase))
                        ?? new ParameterDoc(x.Meta.Name, [], null, 0),
                    x.Meta, x.Use, inSyntax: true)));
        }
    }

    /// <summary>One parameter's attributes over all its sets, for the PARAMETERS section.</summary>
    private static ParameterSetUse Aggregate(ParameterMeta p)
    {
        var positions = p.Sets.Select(s => s.Position).Distinct().ToList();
        return new ParameterSetUse("(all)",
            p.Sets.All(s => s.Mandatory),
            positions.Count == 1 ? positions[0] : null,
            p.Sets.Any(s => s.ByValue),
            p.Sets.Any(s => s.ByPropertyName));
    }

    private static XElement ParameterElement(ParameterDoc doc, ParameterMeta? meta, ParameterSetUse? use, bool inSyntax = false)
    {
        string typeName = meta?.TypeName ?? "System.Object";
        bool isSwitch = meta?.IsSwitch ?? false;
        string pipeline = use is null || (!use.ByValue && !use.ByPropertyName) ? "False"
            : use.ByValue && use.ByPropertyName ? "True (ByPropertyName, ByValue)"
            : use.ByValue ? "True (ByValue)" : "True (ByPropertyName)";
        var value = new XElement(Command + "parameterValue",
            new XAttribute("required", isSwitch ? "false" : "true"),
            new XAttribute("variableLength", typeName.EndsWith("[]", StringComparison.Ordinal) ? "true" : "false"),
            ShortTypeName(typeName));
        return new XElement(Command + "parameter",
            new XAttribute("required", use?.Mandatory == true ? "true" : "false"),
            new XAttribute("variableLength", "true"),
            new XAttribute("globbing", meta?.SupportsWildcards == true ? "true" : "false"),
            new XAttribute("pipelineInput", pipeline),
            new XAttribute("position", use?.Position is { } pos ? pos.ToString(System.Globalization.CultureInfo.InvariantCulture) : "named"),
            new XAttribute("aliases", meta is { Aliases.Count: > 0 } ? string.Join(", ", meta.Aliases) : "none"),
            new XElement(Maml + "name", meta?.Name ?? doc.Name),
            Description(doc.Description),
            inSyntax && isSwitch ? null : value,
            new XElement(Dev + "type",
                new XElement(Maml + "name", typeName),
                new XElement(Maml + "uri")),
            new XElement(Dev + "defaultValue", doc.DefaultValue ?? (isSwitch ? "False" : "None")));
    }

    /// <summary>The name Get-Help shows in syntax: the type's own name (String, Guid[], SecureString, AsrVault).</summary>
    private static string ShortTypeName(string fullName)
    {
        string name = fullName;
        int plus = name.LastIndexOf('+');
        int dot = name.LastIndexOf('.', name.Length - 1 - (name.EndsWith("[]", StringComparison.Ordinal) ? 2 : 0));
        return name[(Math.Max(plus, dot) + 1)..];
    }

    private static IEnumerable<XElement> Types(List<TypeDoc> types, XName element) =>
        types.Select(t => new XElement(element,
            new XElement(Dev + "type",
                new XElement(Maml + "name", t.Name),
                new XElement(Maml + "uri")),
            Description(t.Description)));

    private static XElement Description(List<Block> blocks) => new(Maml + "description", Paras(blocks));

    /// <summary>One maml:para per paragraph; consecutive list items share one para, a line each.</summary>
    private static IEnumerable<XElement> Paras(List<Block> blocks)
    {
        if (blocks.Count == 0) return [new XElement(Maml + "para")];
        var paras = new List<string>();
        bool previousWasItem = false;
        foreach (var b in blocks)
        {
            bool isItem = b.IsListItem;
            if (isItem && previousWasItem) paras[^1] += "\n" + b.Text;
            else paras.Add(b.Text);
            previousWasItem = isItem;
        }
        return paras.Select(p => new XElement(Maml + "para", p));
    }
}
