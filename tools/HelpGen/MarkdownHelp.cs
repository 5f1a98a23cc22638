using System.Text;
using System.Text.RegularExpressions;

namespace AsrModule.HelpGen;

/// <summary>A block of help text: a paragraph (inline markdown removed) or a fenced code block (verbatim).</summary>
internal sealed record Block(string Text, bool IsCode, bool IsListItem = false);

internal sealed record ExampleDoc(string Title, string Code, List<Block> Remarks, int Line);

internal sealed record ParameterDoc(string Name, List<Block> Description, string? DefaultValue, int Line);

internal sealed record TypeDoc(string Name, List<Block> Description);

internal sealed record LinkDoc(string Text, string Uri);

/// <summary>One cmdlet's help as written in docs/help/&lt;Verb-Noun&gt;.md (structure: docs/help/README.md).</summary>
internal sealed class CommandDoc
{
    public required string Name { get; init; }
    public required string File { get; init; }
    public List<Block> Synopsis { get; } = new();
    public List<Block> Description { get; } = new();
    public List<ExampleDoc> Examples { get; } = new();
    public List<ParameterDoc> Parameters { get; } = new();
    public List<TypeDoc> Inputs { get; } = new();
    public List<TypeDoc> Outputs { get; } = new();
    public List<Block> Notes { get; } = new();
    public List<LinkDoc> Links { get; } = new();
    public HashSet<string> Sections { get; } = new(StringComparer.Ordinal);
}

/// <summary>A problem in a source file, reported as <c>file(line): error HELPGEN: message</c> (MSBuild's format).</summary>
internal sealed record Diagnostic(string File, int Line, string Message)
{
    public override string ToString() => $"{File}({Math.Max(Line, 1)}): error HELPGEN: {Message}";
}

/// <summary>
/// Parses the restricted markdown of docs/help. Only what that structure uses is understood:
/// ATX headings (#, ##, ###), paragraphs, "- " list items, ``` fences, and inline `code`,
/// **bold**, [links](...) and \-escapes, which are reduced to plain text for the console.
/// </summary>
internal static partial class MarkdownHelp
{
    private static readonly string[] KnownSections =
        ["SYNOPSIS", "SYNTAX", "DESCRIPTION", "EXAMPLES", "PARAMETERS", "INPUTS", "OUTPUTS", "NOTES", "RELATED LINKS"];

    private sealed record Line(int Number, string Text);

    private sealed class Section(string title, int line)
    {
        public string Title { get; } = title;
        public int LineNumber { get; } = line;
        public List<Line> Body { get; } = new();
        public List<Section> Children { get; } = new();
    }

    public static CommandDoc Parse(string path, List<Diagnostic> errors)
    {
        var lines = File.ReadAllLines(path).Select((t, i) => new Line(i + 1, t.TrimEnd())).ToList();
        string expectedName = Path.GetFileNameWithoutExtension(path);
        var doc = new CommandDoc { Name = expectedName, File = path };
        void Error(int line, string message) => errors.Add(new Diagnostic(path, line, message));

        // Split into "# Name" > "## SECTION" > "### Sub" (fenced code is never a heading).
        Section? top = null, h2 = null, h3 = null;
        var sections = new List<Section>();
        bool inFence = false;
        foreach (var line in lines)
        {
            if (line.Text.TrimStart().StartsWith("```", StringComparison.Ordinal)) inFence = !inFence;
            var heading = inFence ? null : HeadingRegex().Match(line.Text) is { Success: true } m ? m : null;
            if (heading is not null)
            {
                int level = heading.Groups[1].Length;
                string title = heading.Groups[2].Value.Trim();
                if (level == 1)
                {
                    if (top is not null) Error(line.Number, "Only one '# Name' heading is allowed.");
                    top = new Section(title, line.Number);
                    h2 = h3 = null;
                    continue;
                }
                if (top is null) { Error(line.Number, "The file must start with '# " + expectedName + "'."); top = new Section(expectedName, 1); }
                if (level == 2)
                {
                    h2 = new Section(title, line.Number);
                    h3 = null;
                    sections.Add(h2);
                    continue;
                }
                if (level == 3)
                {
                    if (h2 is null) { Error(line.Number, "'###' heading outside a '##' section."); continue; }
                    h3 = new Section(title, line.Number);
                    h2.Children.Add(h3);
                    continue;
                }
                Error(line.Number, $"Heading level {level} is not part of the help structure (use #, ## or ###).");
                continue;
            }
            if (h3 is not null) h3.Body.Add(line);
            else if (h2 is not null) h2.Body.Add(line);
            else if (line.Text.Length > 0 && top is not null) Error(line.Number, "Text before the first '## SECTION' heading.");
        }
        if (inFence) Error(lines.Count, "Unclosed ``` code fence.");
        if (top is null) { Error(1, "The file must start with '# " + expectedName + "'."); return doc; }
        if (!string.Equals(top.Title, expectedName, StringComparison.Ordinal))
            Error(top.LineNumber, $"Heading '# {top.Title}' does not match the file name '{expectedName}'.");

        foreach (var s in sections)
        {
            string name = s.Title.ToUpperInvariant();
            if (!KnownSections.Contains(name))
            {
                Error(s.LineNumber, $"Unknown section '## {s.Title}'. Known: {string.Join(", ", KnownSections)}.");
                continue;
            }
            if (!doc.Sections.Add(name)) Error(s.LineNumber, $"Section '## {name}' appears twice.");
            switch (name)
            {
                case "SYNOPSIS":
                    NoSubsections(s);
                    doc.Synopsis.AddRange(Blocks(s.Body, path, errors));
                    if (doc.Synopsis.Any(b => b.IsCode)) Error(s.LineNumber, "SYNOPSIS must be plain text (no code block).");
                    break;
                case "SYNTAX":
                    break; // generated from the cmdlet; tolerated for platyPS compatibility
                case "DESCRIPTION":
                    NoSubsections(s);
                    doc.Description.AddRange(Blocks(s.Body, path, errors));
                    break;
                case "NOTES":
                    NoSubsections(s);
                    doc.Notes.AddRange(Blocks(s.Body, path, errors));
                    break;
                case "EXAMPLES":
                    foreach (var ex in s.Children)
                    {
                        var blocks = Blocks(ex.Body, path, errors);
                        var code = blocks.FirstOrDefault(b => b.IsCode);
                        if (code is null || code.Text.Trim().Length == 0)
                        {
                            Error(ex.LineNumber, $"Example '{ex.Title}' has no ```powershell code block.");
                            continue;
                        }
                        blocks.Remove(code);
                        doc.Examples.Add(new ExampleDoc(ex.Title, code.Text, blocks, ex.LineNumber));
                    }
                    break;
                case "PARAMETERS":
                    foreach (var p in s.Children)
                    {
                        if (p.Title == "CommonParameters") continue; // platyPS boilerplate; Get-Help adds its own
                        if (!p.Title.StartsWith('-') || p.Title.Length < 2 || p.Title.Contains(' '))
                        {
                            Error(p.LineNumber, $"Parameter heading must be '### -Name', not '### {p.Title}'.");
                            continue;
                        }
                        var blocks = Blocks(p.Body, path, errors);
                        string? defaultValue = null;
                        var dv = blocks.FirstOrDefault(b => !b.IsCode && b.Text.StartsWith("Default value:", StringComparison.Ordinal));
                        if (dv is not null)
                        {
                            defaultValue = dv.Text["Default value:".Length..].Trim();
                            blocks.Remove(dv);
                        }
                        if (doc.Parameters.Any(x => string.Equals(x.Name, p.Title[1..], StringComparison.OrdinalIgnoreCase)))
                            Error(p.LineNumber, $"Parameter {p.Title} is documented twice.");
                        doc.Parameters.Add(new ParameterDoc(p.Title[1..], blocks, defaultValue, p.LineNumber));
                    }
                    break;
                case "INPUTS":
                case "OUTPUTS":
                    foreach (var t in s.Children)
                        (name == "INPUTS" ? doc.Inputs : doc.Outputs).Add(new TypeDoc(t.Title, Blocks(t.Body, path, errors)));
                    if (s.Children.Count == 0) Error(s.LineNumber, $"## {name} needs '### TypeName' entries (use '### None' when there are none).");
                    break;
                case "RELATED LINKS":
                    foreach (var l in s.Body.Where(l => l.Text.Trim().Length > 0))
                    {
                        var m = LinkItemRegex().Match(l.Text);
                        if (m.Success) doc.Links.Add(new LinkDoc(m.Groups[1].Value, m.Groups[2].Value.EndsWith(".md", StringComparison.OrdinalIgnoreCase) ? "" : m.Groups[2].Value));
                        else if (l.Text.TrimStart().StartsWith("- ", StringComparison.Ordinal)) doc.Links.Add(new LinkDoc(l.Text.TrimStart()[2..].Trim(), ""));
                        else Error(l.Number, "RELATED LINKS entries are '- [Text](Target.md)' or '- Text'.");
                    }
                    break;
            }
        }
        return doc;

        void NoSubsections(Section s)
        {
            foreach (var c in s.Children) Error(c.LineNumber, $"'### {c.Title}' is not expected under '## {s.Title}'.");
        }
    }

    /// <summary>Paragraphs (lines joined), list items (one block each, "- " kept) and fenced code (verbatim).</summary>
    private static List<Block> Blocks(List<Line> body, string path, List<Diagnostic> errors)
    {
        var blocks = new List<Block>();
        var para = new StringBuilder();
        bool isItem = false;
        void Flush()
        {
            if (para.Length > 0) blocks.Add(new Block(Inline(para.ToString()), false, isItem));
            para.Clear();
            isItem = false;
        }
        for (int i = 0; i < body.Count; i++)
        {
            string text = body[i].Text;
            string trimmed = text.Trim();
            if (trimmed.StartsWith("```", StringComparison.Ordinal))
            {
                Flush();
                int indent = text.Length - text.TrimStart().Length;
                var code = new List<string>();
                for (i++; i < body.Count && !body[i].Text.Trim().StartsWith("```", StringComparison.Ordinal); i++)
                {
                    string c = body[i].Text;
                    int strip = Math.Min(indent, c.Length - c.TrimStart().Length);
                    code.Add(c[strip..]);
                }
                blocks.Add(new Block(string.Join("\n", code).Trim('\n'), true));
                continue;
            }
            if (trimmed.Length == 0) { Flush(); continue; }
            var item = ListItemRegex().Match(text);
            if (item.Success)
            {
                Flush();
                isItem = true;
                para.Append(item.Groups[1].Value == "*" ? "-" : item.Groups[1].Value).Append(' ').Append(item.Groups[2].Value.Trim());
                continue;
            }
            if (para.Length > 0) para.Append(' ');
            para.Append(trimmed);
        }
        Flush();
        return blocks;
    }

    /// <summary>Markdown inline syntax to console text; `code` spans are kept literally (minus the backticks).</summary>
    public static string Inline(string text)
    {
        var sb = new StringBuilder();
        int pos = 0;
        foreach (Match m in CodeSpanRegex().Matches(text))
        {
            sb.Append(Plain(text[pos..m.Index]));
            sb.Append(m.Groups[1].Value);
            pos = m.Index + m.Length;
        }
        sb.Append(Plain(text[pos..]));
        return sb.ToString();

        static string Plain(string s)
        {
            s = LinkRegex().Replace(s, "$1");
            s = BoldRegex().Replace(s, "$2");
            return EscapeRegex().Replace(s, "$1");
        }
    }

    [GeneratedRegex(@"^(#{1,6})\s+(.+?)\s*#*$")]
    private static partial Regex HeadingRegex();

    [GeneratedRegex(@"^\s*([-*]|\d+\.)\s+(.*)$")]
    private static partial Regex ListItemRegex();

    [GeneratedRegex(@"^\s*[-*]\s+\[([^\]]+)\]\(([^)]*)\)\s*$")]
    private static partial Regex LinkItemRegex();

    [GeneratedRegex(@"`([^`]+)`")]
    private static partial Regex CodeSpanRegex();

    [GeneratedRegex(@"\[([^\]]+)\]\([^)]*\)")]
    private static partial Regex LinkRegex();

    [GeneratedRegex(@"(\*\*|__)(.+?)\1")]
    private static partial Regex BoldRegex();

    [GeneratedRegex(@"\\([\\`*_{}\[\]()#+\-.!<>|])")]
    private static partial Regex EscapeRegex();
}
