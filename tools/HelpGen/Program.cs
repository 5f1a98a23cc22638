using System.Text;
using System.Text.RegularExpressions;
using System.Xml;
using AsrModule.HelpGen;

// HelpGen: docs/help/*.md -> MAML command help (AsrModule.dll-Help.xml) for Get-Help.
//   HelpGen <docs/help dir> <module .psd1> <output .xml> [--assembly <AsrModule.dll>]
// With --assembly, syntax (one line per parameter set), required/position/pipeline/aliases/wildcards
// and types come from the cmdlets' attributes, and every parameter must be documented.
// Exits 1 (errors as "file(line): error HELPGEN: ...") when an exported cmdlet has no markdown file,
// no example, no synopsis, or when the documented parameters do not match the cmdlet.

var positional = new List<string>();
string? assemblyPath = null;
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--assembly" && i + 1 < args.Length) assemblyPath = args[++i];
    else positional.Add(args[i]);
}
if (positional.Count != 3)
{
    Console.Error.WriteLine("usage: HelpGen <docs/help dir> <module .psd1> <output .xml> [--assembly <module .dll>]");
    return 2;
}
string docsDir = Path.GetFullPath(positional[0]);
string manifest = Path.GetFullPath(positional[1]);
string output = Path.GetFullPath(positional[2]);

var errors = new List<Diagnostic>();
var cmdlets = ExportedCmdlets(manifest);
if (cmdlets.Count == 0) errors.Add(new Diagnostic(manifest, 1, "CmdletsToExport lists no cmdlets."));

Dictionary<string, CmdletMeta>? metadata = null;
if (assemblyPath is not null)
{
    try { metadata = CmdletMetadata.Read(Path.GetFullPath(assemblyPath)); }
    catch (Exception ex) when (ex is IOException or BadImageFormatException or UnauthorizedAccessException)
    {
        errors.Add(new Diagnostic(assemblyPath, 1, $"Cannot read cmdlet metadata: {ex.Message}"));
    }
}

var commands = new List<(CommandDoc, CmdletMeta?)>();
foreach (string cmdlet in cmdlets)
{
    string file = Path.Combine(docsDir, cmdlet + ".md");
    if (!File.Exists(file))
    {
        errors.Add(new Diagnostic(manifest, 1, $"Exported cmdlet {cmdlet} has no help: create {file}."));
        continue;
    }
    var doc = MarkdownHelp.Parse(file, errors);
    void Error(int line, string message) => errors.Add(new Diagnostic(file, line, message));
    if (doc.Synopsis.Count == 0 || doc.Synopsis.All(b => b.Text.Trim().Length == 0)) Error(1, "## SYNOPSIS is missing or empty.");
    if (doc.Description.Count == 0) Error(1, "## DESCRIPTION is missing or empty.");
    if (!doc.Sections.Contains("OUTPUTS")) Error(1, "## OUTPUTS is missing (use '### None' when the cmdlet writes nothing).");
    if (doc.Examples.Count == 0) Error(1, $"{cmdlet} has no example: add '### Example 1: ...' with a ```powershell block under ## EXAMPLES.");
    foreach (var p in doc.Parameters.Where(p => p.Description.Count == 0))
        Error(p.Line, $"Parameter -{p.Name} has no description.");

    CmdletMeta? meta = null;
    if (metadata is not null)
    {
        if (!metadata.TryGetValue(cmdlet, out meta))
            Error(1, $"{cmdlet} is exported by the manifest but no [Cmdlet] class in {assemblyPath} declares it.");
        else
        {
            foreach (var p in meta.Parameters.Where(m => !doc.Parameters.Any(d => string.Equals(d.Name, m.Name, StringComparison.OrdinalIgnoreCase))))
                Error(1, $"Parameter -{p.Name} of {cmdlet} is not documented: add '### -{p.Name}' under ## PARAMETERS.");
            foreach (var d in doc.Parameters.Where(d => !meta.Parameters.Any(m => string.Equals(d.Name, m.Name, StringComparison.OrdinalIgnoreCase))))
                Error(d.Line, $"-{d.Name} is documented but {cmdlet} has no such parameter.");
        }
    }
    commands.Add((doc, meta));
}
if (Directory.Exists(docsDir))
{
    foreach (string file in Directory.EnumerateFiles(docsDir, "*-*.md"))
        if (!cmdlets.Contains(Path.GetFileNameWithoutExtension(file), StringComparer.Ordinal))
            errors.Add(new Diagnostic(file, 1, $"{Path.GetFileName(file)} documents a cmdlet that {Path.GetFileName(manifest)} does not export (check the spelling/case)."));
}
else errors.Add(new Diagnostic(docsDir, 1, "The help directory does not exist."));

if (errors.Count > 0)
{
    foreach (var e in errors) Console.Error.WriteLine(e);
    // Never leave stale help behind a failed build.
    if (File.Exists(output)) File.Delete(output);
    Console.Error.WriteLine($"HelpGen: {errors.Count} error(s); {output} not written.");
    return 1;
}

var xml = MamlWriter.Write(commands);
Directory.CreateDirectory(Path.GetDirectoryName(output)!);
var settings = new XmlWriterSettings { Indent = true, Encoding = new UTF8Encoding(false), NewLineChars = "\n" };
using (var writer = XmlWriter.Create(output, settings)) xml.Save(writer);
int examples = commands.Sum(c => c.Item1.Examples.Count);
Console.WriteLine($"HelpGen: {commands.Count} cmdlet(s), {examples} example(s) -> {output}");
return 0;

// CmdletsToExport = @( 'A', "B", ... ) in the module manifest.
static List<string> ExportedCmdlets(string psd1)
{
    string text = File.ReadAllText(psd1);
    var block = Regex.Match(text, @"CmdletsToExport\s*=\s*@\((?<list>[^)]*)\)", RegexOptions.IgnoreCase);
    if (!block.Success) return [];
    string list = Regex.Replace(block.Groups["list"].Value, @"#[^\n]*", "");
    return Regex.Matches(list, @"'(?<n>[^']+)'|""(?<n>[^""]+)""").Select(m => m.Groups["n"].Value.Trim()).Distinct().ToList();
}
