using System.Management.Automation;
using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Infrastructure;

/// <summary>
/// -RecoveryPoint takes 'Latest', 'LatestProcessed', 'LatestAppConsistent', a recovery point object,
/// a point's sequence number, or a time (the newest point at or before it).
/// </summary>
public sealed class RecoveryPointChoiceTransformationAttribute : ArgumentTransformationAttribute
{
    public override object Transform(EngineIntrinsics engineIntrinsics, object inputData)
    {
        object value = inputData is PSObject pso ? pso.BaseObject : inputData;
        switch (value)
        {
            case RecoveryPointChoice c: return c;
            case AsrRecoveryPoint p: return RecoveryPointChoice.Of(p);
            case AsrModule.Engine.Replication.Groups.AsrGroupRecoveryPoint g: return RecoveryPointChoice.OfGroup(g);
            case DateTime dt: return new RecoveryPointChoice(RecoveryPointKind.Specific, null, new DateTimeOffset(dt.ToUniversalTime()));
            case DateTimeOffset dto: return new RecoveryPointChoice(RecoveryPointKind.Specific, null, dto);
            case int or long: return new RecoveryPointChoice(RecoveryPointKind.Specific, Convert.ToInt64(value));
            case string s when Enum.TryParse<RecoveryPointKind>(s, ignoreCase: true, out var kind) && kind != RecoveryPointKind.Specific:
                return new RecoveryPointChoice(kind);
            case string s when long.TryParse(s, out var seq): return new RecoveryPointChoice(RecoveryPointKind.Specific, seq);
            case string s when DateTimeOffset.TryParse(s, out var t): return new RecoveryPointChoice(RecoveryPointKind.Specific, null, t);
        }
        throw new ArgumentTransformationMetadataException(
            $"-RecoveryPoint takes Latest, LatestProcessed, LatestAppConsistent, a recovery point or a group point (Get-AsrRecoveryPoint), a sequence number or a time; not '{value}'.");
    }
}
