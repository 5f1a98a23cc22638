using System.Text.Json.Nodes;

namespace AsrModule.Tests.FakeArm;

/// <summary>
/// A long-running operation: its status (Azure-AsyncOperation URL) and its result (Location URL). It completes on
/// the <see cref="PollsNeeded"/>th poll of either URL: <see cref="Complete"/> then applies its effect and gives the
/// final answer of the Location URL. A failing one ends with status Failed and <see cref="ErrorCode"/>.
/// </summary>
internal sealed class FakeOperation
{
    public required string Id { get; init; }
    public required string StatusPath { get; init; }
    public int PollsNeeded { get; init; } = 1;
    public int Polls { get; set; }
    public string Status { get; set; } = "InProgress";
    public string? ErrorCode { get; init; }
    public string? ErrorMessage { get; init; }
    /// <summary>Set when completing the operation threw (an Azurite failure): it then ends Failed with this text.</summary>
    public string? FailureMessage { get; set; }
    public DateTimeOffset Started { get; } = DateTimeOffset.UtcNow;
    public DateTimeOffset? Ended { get; set; }
    /// <summary>Applies the operation's effect; returns the Location URL's final status and body.</summary>
    public required Func<Task<(int Status, JsonNode? Body)>> Complete { get; init; }
    public int FinalStatus { get; set; }
    public JsonNode? FinalBody { get; set; }
    public SemaphoreSlim Gate { get; } = new(1, 1);

    /// <summary>The operation-status body of the ARM async API (id, name, status, startTime, endTime, error).</summary>
    public JsonObject StatusJson()
    {
        var status = new JsonObject
        {
            ["id"] = StatusPath,
            ["name"] = Id,
            ["status"] = Status,
            ["startTime"] = Started.ToString("O"),
        };
        if (Ended is { } ended) status["endTime"] = ended.ToString("O");
        if (Status == "Failed")
            status["error"] = new JsonObject { ["code"] = ErrorCode ?? "InternalOperationError", ["message"] = FailureMessage ?? ErrorMessage };
        return status;
    }
}
