using System.Text.Json.Nodes;

namespace AsrModule.Tests.FakeArm;

/// <summary>
/// A fault injected through POST /_fake/faults: the next <see cref="Count"/> requests whose method matches and
/// whose path contains <see cref="PathContains"/> (case-insensitive) either answer <see cref="Status"/> at once
/// (429 with Retry-After, 500, 401 ...), or, with <see cref="Lro"/>, are accepted as a long-running operation that
/// ends Failed with the error <see cref="Code"/> (QuotaExceeded, SkuNotAvailable, ...).
/// </summary>
internal sealed class Fault
{
    public string? Method { get; init; }
    public string PathContains { get; init; } = "";
    public int Count { get; set; } = 1;
    public int Status { get; init; } = 429;
    public string Code { get; init; } = "TooManyRequests";
    public string Message { get; init; } = "The request was throttled (a fault injected into the fake).";
    public int? RetryAfter { get; init; }
    public bool Lro { get; init; }

    public static Fault FromJson(JsonObject o) => new()
    {
        Method = (string?)o["method"],
        PathContains = (string?)o["path"] ?? "",
        Count = (int?)o["count"] ?? 1,
        Status = (int?)o["status"] ?? 429,
        Code = (string?)o["code"] ?? ((int?)o["status"] == 429 || o["status"] is null ? "TooManyRequests" : "InjectedFault"),
        Message = (string?)o["message"] ?? "A fault injected into the fake.",
        RetryAfter = (int?)o["retryAfter"],
        Lro = (bool?)o["lro"] ?? false,
    };

    public bool Matches(string method, string path) =>
        Count > 0
        && (Method is null || string.Equals(Method, method, StringComparison.OrdinalIgnoreCase))
        && path.Contains(PathContains, StringComparison.OrdinalIgnoreCase);
}

/// <summary>The injected faults, consumed in the order they were added.</summary>
internal sealed class Faults
{
    private readonly List<Fault> _faults = [];

    public void Add(Fault fault)
    {
        lock (_faults) _faults.Add(fault);
    }

    public void Clear()
    {
        lock (_faults) _faults.Clear();
    }

    /// <summary>Takes one immediate (non-LRO) fault for this request, or null.</summary>
    public Fault? TakeImmediate(string method, string path) => Take(method, path, lro: false);

    /// <summary>Takes one failed-LRO fault for this request, or null (asked only by routes that start an LRO).</summary>
    public Fault? TakeLro(string method, string path) => Take(method, path, lro: true);

    private Fault? Take(string method, string path, bool lro)
    {
        lock (_faults)
        {
            var fault = _faults.FirstOrDefault(f => f.Lro == lro && f.Matches(method, path));
            if (fault is not null) fault.Count--;
            return fault;
        }
    }
}
