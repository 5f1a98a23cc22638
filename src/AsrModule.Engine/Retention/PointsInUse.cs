using AsrModule.Engine.Items;

namespace AsrModule.Engine.Retention;

/// <summary>Points an item's lifecycle records still depend on: retention must never take them away.</summary>
public static class PointsInUse
{
    /// <summary>
    /// The running drill serves its point's disks straight out of the vault, and a failover in effect
    /// may still change its point or be cancelled back to it. The last drill's summary names a point
    /// too, but that drill is over.
    /// </summary>
    public static HashSet<long> Of(AsrProtectedItem item)
    {
        var inUse = new HashSet<long>();
        if (item.TestFailover is { } drill) inUse.Add(drill.RecoveryPointSequence);
        if (item.Failover is { } failover) inUse.Add(failover.RecoveryPointSequence);
        return inUse;
    }
}
