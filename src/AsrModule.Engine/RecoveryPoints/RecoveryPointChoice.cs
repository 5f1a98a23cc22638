using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.RecoveryPoints;

public enum RecoveryPointKind
{
    /// <summary>Run a replication cycle first, then use the point it publishes (least data loss).</summary>
    Latest,
    /// <summary>The newest point already in the vault (fastest).</summary>
    LatestProcessed,
    /// <summary>The newest app-consistent point.</summary>
    LatestAppConsistent,
    /// <summary>A given point, by sequence or by time (the newest point at or before it).</summary>
    Specific,
}

/// <summary>Which recovery point an operation uses, as the user said it.</summary>
public sealed record RecoveryPointChoice(RecoveryPointKind Kind, long? Sequence = null, DateTimeOffset? AtOrBefore = null)
{
    /// <summary>Set when the user gave a point object: it must belong to the item it is used for.</summary>
    public string? ItemId { get; init; }
    public Guid? PointId { get; init; }
    public string? ItemName { get; init; }

    /// <summary>
    /// Latest, LatestProcessed and a time choose among Inconsistent points too (read live while written). Off by
    /// default: those skip them. A point given by sequence or object is used whatever its consistency.
    /// </summary>
    public bool AllowInconsistent { get; init; }

    /// <summary>Set when the user gave a replication group's point: each member uses its own point of it.</summary>
    public Replication.Groups.AsrGroupRecoveryPoint? GroupPoint { get; init; }

    public static RecoveryPointChoice LatestProcessed { get; } = new(RecoveryPointKind.LatestProcessed);
    public static RecoveryPointChoice OfGroup(Replication.Groups.AsrGroupRecoveryPoint point) =>
        new(RecoveryPointKind.Specific) { GroupPoint = point };
    public static RecoveryPointChoice Of(AsrRecoveryPoint point) =>
        new(RecoveryPointKind.Specific, point.Sequence) { ItemId = point.ItemId, PointId = point.PointId, ItemName = point.ItemName };

    public override string ToString() => Kind switch
    {
        RecoveryPointKind.Specific when GroupPoint is { } g => $"group point {g}",
        RecoveryPointKind.Specific when Sequence is { } s => $"point {s}",
        RecoveryPointKind.Specific => $"the newest point at or before {AtOrBefore:u}",
        _ => Kind.ToString(),
    };

    /// <summary>Resolves to a published point. <see cref="RecoveryPointKind.Latest"/> must be synced by the caller first.</summary>
    public async Task<AsrRecoveryPoint> ResolveAsync(AsrVault vault, AsrProtectedItem item, CancellationToken ct)
    {
        if (ItemId is not null && ItemId != item.Id)
            throw new AsrException(AsrErrorIds.RecoveryPointNotFound, AsrErrorKind.InvalidArgument,
                $"The recovery point given is point {Sequence} of '{ItemName}', not of '{item.Name}'.", item.Name);
        var points = await vault.GetPointsAsync(item, ct).ConfigureAwait(false);
        long? groupMemberSequence = null;
        if (GroupPoint is { } gp)
            groupMemberSequence = gp.Members.FirstOrDefault(m => m.ItemId == item.Id)?.PointSequence
                ?? throw new AsrException(AsrErrorIds.RecoveryPointNotFound, AsrErrorKind.InvalidArgument,
                    $"'{item.Name}' is not a member of group point {gp}; its members are {gp.MemberNames}.", item.Name);
        // A choice by kind or time skips points read live while written, unless asked; a point named is used as it is.
        var usable = AllowInconsistent ? points : points.Where(p => p.Consistency != RecoveryPointConsistency.Inconsistent).ToList();
        AsrRecoveryPoint? found = Kind switch
        {
            _ when groupMemberSequence is { } gs => points.FirstOrDefault(p => p.Sequence == gs && p.GroupPointId == GroupPoint!.GroupPointId),
            RecoveryPointKind.Latest or RecoveryPointKind.LatestProcessed => usable.LastOrDefault(),
            RecoveryPointKind.LatestAppConsistent => points.LastOrDefault(p => p.Consistency == RecoveryPointConsistency.AppConsistent),
            _ when Sequence is { } s => points.FirstOrDefault(p => p.Sequence == s && (PointId is null || p.PointId == PointId)),
            _ => usable.LastOrDefault(p => p.RecoveryPointTimeUtc <= AtOrBefore),
        };
        int skipped = points.Count - usable.Count;
        return found ?? throw new AsrException(AsrErrorIds.RecoveryPointNotFound, AsrErrorKind.ObjectNotFound,
            $"'{item.Name}' has no recovery point matching {this}. Its points: " +
            (points.Count == 0 ? "none yet" : string.Join(", ", points.Select(p => $"{p.Sequence} ({p.Consistency}, {p.RecoveryPointTimeUtc:u})"))) + "." +
            (skipped > 0 && Sequence is null ? $" {skipped} Inconsistent point(s) were skipped (read live while the disks were written): pass -AllowInconsistent, or give a point." : ""),
            item.Name);
    }
}
