using System.Text.Json.Serialization;
using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Engine.Replication.Groups;

/// <summary>
/// A replication group's coordinated point: one point per member, all captured at one instant.
/// Written after every member's point is published, so its existence is what publishes the group
/// point: members' points without it are ordinary single-machine points.
/// </summary>
public sealed class AsrGroupRecoveryPoint
{
    public Guid GroupPointId { get; set; }
    public string ReplicationGroup { get; set; } = "";
    public long Sequence { get; set; }
    public DateTimeOffset RecoveryPointTimeUtc { get; set; }
    public RecoveryPointConsistency Consistency { get; set; }
    public List<GroupMemberPoint> Members { get; set; } = new();

    [JsonIgnore] public string? VaultLocation { get; set; }
    [JsonIgnore] public string MemberNames => string.Join(", ", Members.Select(m => m.ItemName));

    public override string ToString() => $"{ReplicationGroup}@{Sequence}";
}

public sealed class GroupMemberPoint
{
    public string ItemId { get; set; } = "";
    public string ItemName { get; set; } = "";
    public long PointSequence { get; set; }
}
