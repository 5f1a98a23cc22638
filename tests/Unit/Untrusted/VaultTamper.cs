using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace AsrModule.Tests.Unit.Untrusted;

/// <summary>What someone with write access to a local vault's directory can do: plant, edit, cut and delete objects.</summary>
internal static class VaultTamper
{
    public static string PathOf(EngineHarness h, string key) => Path.Combine(h.Dir["vault"], key.Replace('/', Path.DirectorySeparatorChar));

    /// <summary>Rewrites a JSON record (a manifest, an item, the header) in place.</summary>
    public static void EditJson(EngineHarness h, string key, Action<JsonNode> edit) => EditJson(PathOf(h, key), edit);

    public static void EditJson(string path, Action<JsonNode> edit)
    {
        var node = JsonNode.Parse(File.ReadAllText(path))!;
        edit(node);
        File.WriteAllText(path, node.ToJsonString());
    }

    public static void Plant(EngineHarness h, string key, string content = "not an object of this module\n")
    {
        string path = PathOf(h, key);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
    }

    public static void Truncate(string path, long length)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Write);
        fs.SetLength(length);
    }

    public static void FlipByte(string path, long offset)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        fs.Position = offset;
        int b = fs.ReadByte();
        fs.Position = offset;
        fs.WriteByte((byte)(b ^ 0x5a));
    }

    /// <summary>Every file under the test folder except those under <paramref name="inside"/> (and the vault's own).</summary>
    public static List<string> FilesOutside(EngineHarness h, string inside)
    {
        string vault = Path.GetFullPath(h.Dir["vault"]) + Path.DirectorySeparatorChar;
        string allowed = Path.GetFullPath(inside) + Path.DirectorySeparatorChar;
        return Directory.EnumerateFiles(h.Dir.Path, "*", SearchOption.AllDirectories)
            .Select(Path.GetFullPath)
            .Where(f => !f.StartsWith(vault, StringComparison.Ordinal) && !f.StartsWith(allowed, StringComparison.Ordinal))
            .Order(StringComparer.Ordinal).ToList();
    }
}

/// <summary>Keeps what the engine logs, to check that what it ignores it also reports.</summary>
internal sealed class ListLogger : ILogger
{
    public ConcurrentQueue<(LogLevel Level, string Message)> Entries { get; } = new();
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel logLevel) => true;
    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Entries.Enqueue((logLevel, formatter(state, exception)));
    public IEnumerable<string> Warnings => Entries.Where(e => e.Level == LogLevel.Warning).Select(e => e.Message);
}
