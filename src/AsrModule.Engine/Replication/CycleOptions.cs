namespace AsrModule.Engine.Replication;

/// <summary>What a cycle is asked to produce beyond a crash-consistent point.</summary>
public sealed record CycleOptions
{
    public static readonly CycleOptions Default = new();

    /// <summary>Run the item's freeze/thaw script around the capture and mark the point app-consistent.</summary>
    public bool AppConsistent { get; init; }
}
