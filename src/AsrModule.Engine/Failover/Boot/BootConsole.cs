using System.Text;
using System.Text.RegularExpressions;

namespace AsrModule.Engine.Failover.Boot;

/// <summary>
/// The serial console of a booting machine, read from QEMU's log file as it grows: what the guest wrote, kept up to
/// <see cref="MaximumKept"/> characters with control characters removed (the guest's bytes are untrusted: they end
/// up in records, messages and the health report).
/// </summary>
public sealed class BootConsole(string path)
{
    public const int MaximumKept = 1 << 20;
    private readonly StringBuilder _text = new();
    private long _offset;
    private int _searchedUpTo;

    public string Path { get; } = path;

    public string Text => _text.ToString();

    /// <summary>Reads what the guest wrote since the last call; returns whether there was anything.</summary>
    public bool Refresh()
    {
        if (!File.Exists(Path)) return false;
        using var stream = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        if (stream.Length <= _offset) return false;
        stream.Position = _offset;
        var buffer = new byte[(int)Math.Min(stream.Length - _offset, 4 << 20)];
        int read = stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        _offset += read;
        _text.Append(Clean(Encoding.UTF8.GetString(buffer, 0, read)));
        if (_text.Length > MaximumKept)
        {
            int drop = _text.Length - MaximumKept;
            _text.Remove(0, drop);
            _searchedUpTo = Math.Max(0, _searchedUpTo - drop);
        }
        return read > 0;
    }

    /// <summary>
    /// The first line matching <paramref name="pattern"/> among the complete lines not searched yet, or null. A line is
    /// complete once its newline arrived, so a pattern never matches half a line.
    /// </summary>
    public string? FindLine(Regex pattern)
    {
        string text = Text;
        int end = text.LastIndexOf('\n');
        if (end < _searchedUpTo) return null;
        int start = _searchedUpTo;
        _searchedUpTo = end + 1;
        foreach (var line in text[start..end].Split('\n'))
        {
            string trimmed = line.TrimEnd('\r');
            try
            {
                if (pattern.IsMatch(trimmed)) return trimmed;
            }
            catch (RegexMatchTimeoutException) { /* a pathological line: not a match */ }
        }
        return null;
    }

    /// <summary>The last <paramref name="lines"/> lines (at most 4,000 characters).</summary>
    public string Tail(int lines = 40)
    {
        var all = Text.Replace("\r", "", StringComparison.Ordinal).TrimEnd('\n').Split('\n');
        string tail = string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
        return tail.Length <= 4000 ? tail : tail[^4000..];
    }

    /// <summary>Keeps printable characters, tabs and line ends; drops escape sequences' ESC and other controls.</summary>
    private static string Clean(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (char c in s)
            if (c is '\n' or '\r' or '\t' || !char.IsControl(c)) sb.Append(c);
        return sb.ToString();
    }
}
