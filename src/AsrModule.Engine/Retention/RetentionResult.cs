namespace AsrModule.Engine.Retention;

/// <summary>What one retention pass did to an item's points.</summary>
public sealed class RetentionResult
{
    public IReadOnlyList<long> KeptSequences { get; init; } = [];
    /// <summary>Points whose manifests this pass deleted.</summary>
    public IReadOnlyList<long> PrunedSequences { get; init; } = [];
    /// <summary>Kept points that got a full map because their parent was pruned.</summary>
    public IReadOnlyList<long> RebasedSequences { get; init; } = [];
    public IReadOnlyList<string> DeletedPacks { get; init; } = [];
    /// <summary>Bytes of every object deleted: packs, indexes and manifests.</summary>
    public long BytesReclaimed { get; init; }
    public long PackBytesReclaimed { get; init; }
}
