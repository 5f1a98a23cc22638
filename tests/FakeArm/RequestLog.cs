using System.Text.Json.Nodes;

namespace AsrModule.Tests.FakeArm;

/// <summary>One request the fake received (not counting /_fake/): what tests assert on. The Authorization header
/// itself is never kept, only whether a bearer token came with it.</summary>
public sealed record LoggedRequest(
    long Sequence,
    DateTimeOffset Received,
    string Method,
    string Path,
    string Query,
    string? UserAgent,
    bool Bearer,
    string? ContentType,
    string? Body)
{
    public int Status { get; set; }
}

/// <summary>The requests received, in order (GET /_fake/requests).</summary>
internal sealed class RequestLog
{
    private readonly List<LoggedRequest> _entries = [];
    private long _sequence;

    public LoggedRequest Add(string method, string path, string query, string? userAgent, bool bearer, string? contentType, string? body)
    {
        lock (_entries)
        {
            var entry = new LoggedRequest(++_sequence, DateTimeOffset.UtcNow, method, path, query, userAgent, bearer, contentType, body);
            _entries.Add(entry);
            return entry;
        }
    }

    public JsonArray ToJson()
    {
        lock (_entries)
        {
            var array = new JsonArray();
            foreach (var e in _entries)
                array.Add(new JsonObject
                {
                    ["sequence"] = e.Sequence,
                    ["received"] = e.Received.ToString("O"),
                    ["method"] = e.Method,
                    ["path"] = e.Path,
                    ["query"] = e.Query,
                    ["userAgent"] = e.UserAgent,
                    ["bearer"] = e.Bearer,
                    ["contentType"] = e.ContentType,
                    ["body"] = e.Body,
                    ["status"] = e.Status,
                });
            return array;
        }
    }

    public void Clear()
    {
        lock (_entries) _entries.Clear();
    }
}
