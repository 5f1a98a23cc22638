using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Engine.Retention;

/// <summary>What the retention rules look at in a point: nothing else about it matters to them.</summary>
public readonly record struct RetentionCandidate(long Sequence, DateTimeOffset TimeUtc, RecoveryPointConsistency Consistency, bool IsGroupPoint = false)
{
    public static RetentionCandidate Of(AsrRecoveryPoint point) => new(point.Sequence, point.RecoveryPointTimeUtc, point.Consistency, point.GroupPointId is not null);
}
