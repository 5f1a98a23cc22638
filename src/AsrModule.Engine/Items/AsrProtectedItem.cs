namespace AsrModule.Engine.Items;

/// <summary>A machine under protection: its disks, its policy and where it is in its lifecycle.</summary>
public sealed class AsrProtectedItem
{
    public string Name { get; set; } = "";
    public string Id { get; set; } = "";
    public string PolicyName { get; set; } = "";
    public DateTimeOffset CreatedUtc { get; set; }
    public ProtectedItemState State { get; set; }
    /// <summary>Why the item needs resync, naming the disk.</summary>
    public string? ResyncReason { get; set; }
    public List<ProtectedDisk> Disks { get; set; } = new();
    public long LastPointSequence { get; set; }
    public DateTimeOffset? LastRecoveryPointTimeUtc { get; set; }
    public DateTimeOffset? LastCycleUtc { get; set; }
    public string? LastError { get; set; }
    public Guid? LastJobId { get; set; }

    // Filled in when read, from the policy in force; not stored.
    [System.Text.Json.Serialization.JsonIgnore] public TimeSpan? CurrentRpo { get; set; }
    [System.Text.Json.Serialization.JsonIgnore] public ReplicationHealth ReplicationHealth { get; set; }
    [System.Text.Json.Serialization.JsonIgnore] public string? VaultLocation { get; set; }

    /// <summary>Operations this item accepts in its current state.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string[] AllowedOperations => State switch
    {
        ProtectedItemState.InitialReplicationPending => ["Invoke-AsrReplication", "Disable-AsrReplication"],
        ProtectedItemState.Protected => ["Invoke-AsrReplication", "Export-AsrRecoveryPoint", "Disable-AsrReplication"],
        ProtectedItemState.ResyncRequired => ["Invoke-AsrReplication (resync)", "Export-AsrRecoveryPoint", "Disable-AsrReplication"],
        _ => [],
    };

    public override string ToString() => Name;
}
