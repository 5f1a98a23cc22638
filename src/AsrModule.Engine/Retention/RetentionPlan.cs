using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Engine.Retention;

/// <summary>One retention pass decided, not yet done: which listed points go and which must be rebased first.</summary>
internal sealed record RetentionPlan(
    IReadOnlyList<AsrRecoveryPoint> Points,
    IReadOnlySet<long> Kept,
    IReadOnlyList<AsrRecoveryPoint> ToPrune,
    IReadOnlyList<AsrRecoveryPoint> ToRebase)
{
    /// <summary>Points readers, a drill or a failover use now: kept, and nothing they read is moved (see <see cref="PackRepacker"/>).</summary>
    public IReadOnlySet<long> InUse { get; init; } = new HashSet<long>();

    public static RetentionPlan For(IReadOnlyList<AsrRecoveryPoint> points, IReadOnlySet<long> kept) => new(
        points,
        kept,
        // Newest first: a pruned point is deleted only after every pruned point that chains through it,
        // so a crash midway never leaves a listed point whose parent is gone.
        points.Where(p => !kept.Contains(p.Sequence)).OrderByDescending(p => p.Sequence).ToList(),
        // Only a kept point whose own parent goes needs new maps; kept points above it chain
        // through it, which stays (and reads the same once rebased).
        points.Where(p => kept.Contains(p.Sequence) && p.ParentSequence is { } parent && !kept.Contains(parent)).ToList());

    /// <summary>
    /// The nearest older point of <paramref name="point"/>'s chain that this plan keeps: what its rebase writes its maps
    /// relative to (null: none, it gets full maps). Kept points are never pruned, so the point can name it as its
    /// parent; a later pass that stops keeping it rebases the point again first, as any point whose parent goes.
    /// </summary>
    public AsrRecoveryPoint? KeptAncestorOf(AsrRecoveryPoint point)
    {
        var bySequence = Points.ToDictionary(p => p.Sequence);
        for (long? parent = point.ParentSequence; parent is { } s && bySequence.TryGetValue(s, out var p); parent = p.ParentSequence)
            if (Kept.Contains(s)) return p;
        return null;
    }

    /// <summary>
    /// This plan, with every point that <paramref name="points"/> chain through (parent, its parent, ...) kept instead of
    /// pruned: for kept points that could not be rebased, which still read through their ancestors.
    /// </summary>
    public RetentionPlan KeepingChainsOf(IEnumerable<AsrRecoveryPoint> points)
    {
        var bySequence = Points.ToDictionary(p => p.Sequence);
        var keep = new HashSet<long>(Kept);
        foreach (var point in points)
            for (long? parent = point.ParentSequence; parent is { } s && bySequence.TryGetValue(s, out var p) && keep.Add(s);)
                parent = p.ParentSequence;
        return this with { Kept = keep, ToPrune = ToPrune.Where(p => !keep.Contains(p.Sequence)).ToList() };
    }
}
