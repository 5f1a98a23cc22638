namespace AsrModule.Engine.Events;

public enum AsrEventSeverity { Information, Warning, Error, Critical }

/// <summary>Something an operator should be able to find later: kept in the vault and written to the log.</summary>
public sealed class AsrEvent
{
    public Guid Id { get; set; }
    public DateTimeOffset TimeUtc { get; set; }
    public AsrEventSeverity Severity { get; set; }
    /// <summary>Stable name of what happened (see <see cref="AsrEventTypes"/>).</summary>
    public string EventType { get; set; } = "";
    public string? ItemName { get; set; }
    public string? ReplicationGroup { get; set; }
    public string? AgentHost { get; set; }
    public Guid? JobId { get; set; }
    public string Message { get; set; } = "";

    public override string ToString() => $"{TimeUtc:u} {Severity} {EventType}: {Message}";
}

public static class AsrEventTypes
{
    public const string AgentStarted = "AgentStarted";
    public const string AgentStopped = "AgentStopped";
    public const string ItemAssigned = "ItemAssigned";
    public const string ItemUnassigned = "ItemUnassigned";
    public const string CycleFailed = "CycleFailed";
    public const string ResyncCompleted = "ResyncCompleted";
    /// <summary>A resync found the vault's copy damaged and published a whole point all the same (blocks sent anew, an older base, or a full copy).</summary>
    public const string ReplicaRepaired = "ReplicaRepaired";
    /// <summary>A read of a point (export, failover) found its data damaged; the item is marked for resync.</summary>
    public const string ReplicaDamaged = "ReplicaDamaged";
    public const string FreezeRecovered = "FreezeRecovered";
    public const string GroupStalled = "GroupStalled";
    public const string HealthChanged = "HealthChanged";
    public const string AppConsistencyFailed = "AppConsistencyFailed";
    /// <summary>An item's freeze script was not run: this host does not allow it, its hash changed, or its owner or mode is unsafe (FreezeScriptTrust).</summary>
    public const string AppConsistencyScriptNotAllowed = "AppConsistencyScriptNotAllowed";
    public const string AppConsistentPointCreated = "AppConsistentPointCreated";
    public const string RetentionFailed = "RetentionFailed";
    /// <summary>A point was published Inconsistent: its disks were read live and the source wrote during the read.</summary>
    public const string PointInconsistent = "PointInconsistent";
}
