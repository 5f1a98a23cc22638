namespace AsrModule.Engine.Retention;

/// <summary>What one retention pass did to an item's points.</summary>
public sealed class RetentionResult
{
    public IReadOnlyList<long> KeptSequences { get; init; } = [];
    /// <summary>Points whose manifests this pass deleted.</summary>
    public IReadOnlyList<long> PrunedSequences { get; init; } = [];
    /// <summary>Kept points that got a full map because their parent was pruned.</summary>
    public IReadOnlyList<long> RebasedSequences { get; init; } = [];
    /// <summary>Pruned points whose live extents were copied into new packs (their old packs then deleted).</summary>
    public IReadOnlyList<long> RepackedSequences { get; init; } = [];
    /// <summary>Kept points given new maps (and manifests) naming the repacked extents.</summary>
    public IReadOnlyList<long> RepackRewrittenSequences { get; init; } = [];
    /// <summary>Stored bytes the repack copied.</summary>
    public long RepackCopiedBytes { get; init; }
    public IReadOnlyList<string> DeletedPacks { get; init; } = [];
    /// <summary>Bytes of every object deleted: packs, indexes and manifests.</summary>
    public long BytesReclaimed { get; init; }
    public long PackBytesReclaimed { get; init; }
}
