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

    /// <summary>Host name of the agent that replicates this item continuously (null: none, cycles run only on request).</summary>
    public string? AgentHost { get; set; }
    /// <summary>Replication group: members get coordinated points taken at one instant.</summary>
    public string? ReplicationGroup { get; set; }
    /// <summary>
    /// Script run with the argument "freeze" before an app-consistent point and "thaw" after it
    /// (e.g. samples/hooks/fsfreeze.sh). Null: no app-consistent points.
    /// </summary>
    public string? AppConsistencyScript { get; set; }
    /// <summary>
    /// SHA-256 (hex) of <see cref="AppConsistencyScript"/> when it was set. A host runs the script only if it
    /// allows it and the file still has this hash (<see cref="Replication.Consistency.FreezeScriptTrust"/>).
    /// </summary>
    public string? AppConsistencyScriptSha256 { get; set; }
    /// <summary>QMP socket of the running QEMU/KVM guest whose disks these are: changes come from QEMU's dirty bitmaps.</summary>
    public string? QmpSocketPath { get; set; }
    public DateTimeOffset? LastAppConsistentPointTimeUtc { get; set; }
    /// <summary>The consistency of the latest point (Inconsistent: read live while written).</summary>
    public RecoveryPoints.RecoveryPointConsistency? LastPointConsistency { get; set; }
    /// <summary>
    /// How the disks are captured (set when protected, refreshed by every cycle): "QemuDirtyBitmap" (a running guest,
    /// through QMP), "ReflinkClone" (image files on XFS/btrfs, cloned at the instant), "Qcow2Bitmap" (a stopped qcow2
    /// image's persistent dirty bitmap), "HashScan" (read live; consistent only when nothing writes during the read).
    /// </summary>
    public string? CaptureMethod { get; set; }
    /// <summary>The best consistency the capture method can reach and what it depends on, in words (Get-AsrProtectedItem).</summary>
    public string? ReachableConsistency { get; set; }
    /// <summary>
    /// Set before the freeze script runs and cleared after its thaw: a process killed in between leaves
    /// it set, and the next cycle runs the thaw first so the application is not left frozen.
    /// </summary>
    public Guid? FreezeHeldByJobId { get; set; }

    // Filled in when read, from the policy in force; not stored.
    [System.Text.Json.Serialization.JsonIgnore] public TimeSpan? CurrentRpo { get; set; }
    [System.Text.Json.Serialization.JsonIgnore] public ReplicationHealth ReplicationHealth { get; set; }
    [System.Text.Json.Serialization.JsonIgnore] public string? VaultLocation { get; set; }

    /// <summary>The running drill, if any.</summary>
    public TestFailoverRecord? TestFailover { get; set; }
    /// <summary>The last completed drill, with its cleanup comment.</summary>
    public TestFailoverSummary? LastTestFailover { get; set; }
    /// <summary>The failover in effect (FailedOver, Committed, Reprotected), if any.</summary>
    public FailoverRecord? Failover { get; set; }
    /// <summary>Reverse replication (recovered disks → original site) after reprotect.</summary>
    public ReverseReplicationRecord? Reverse { get; set; }
    /// <summary>Set while a failover job runs, so a drill cannot start under it.</summary>
    public ExclusiveOperationRecord? ExclusiveOperation { get; set; }
    /// <summary>Set while a replication cycle runs; a cycle whose process died leaves it set, which forces a resync.</summary>
    public Guid? CycleInProgressJobId { get; set; }

    /// <summary>What the last read found that health depends on (not stored; see VaultCatalog.EvaluateHealth).</summary>
    [System.Text.Json.Serialization.JsonIgnore] internal ItemHealthInputs? HealthInputs { get; set; }

    // Filled in when read; not stored.
    [System.Text.Json.Serialization.JsonIgnore] public int? ActiveJobPercent { get; set; }
    [System.Text.Json.Serialization.JsonIgnore] public string? ActiveJobOperation { get; set; }

    [System.Text.Json.Serialization.JsonIgnore]
    public ActiveLocation ActiveLocation => ItemStateMachine.LocationOf(State);

    /// <summary>True when the next vault-direction cycle must compare checksums instead of trusting the tracker.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool NeedsResync => State == ProtectedItemState.ResyncRequired || ResyncReason is not null;

    /// <summary>Cmdlets this item accepts in its current state.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string[] AllowedOperations => ItemStateMachine.AllowedOperations(State).Select(ItemStateMachine.CommandOf).ToArray();

    /// <summary>Records that the replica must be checked by checksum on the next cycle.</summary>
    public void MarkResyncRequired(string reason)
    {
        ResyncReason = reason;
        LastError = reason;
        if (State == ProtectedItemState.Protected) State = ProtectedItemState.ResyncRequired;
    }

    public override string ToString() => Name;
}
