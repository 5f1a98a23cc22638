namespace AsrModule.Engine.Items;

/// <summary>Where a protected item is in its lifecycle. Persisted in the vault. See <see cref="ItemStateMachine"/>.</summary>
public enum ProtectedItemState
{
    /// <summary>Registered; initial replication has not completed yet.</summary>
    InitialReplicationPending,
    /// <summary>Has at least one recovery point; delta cycles run from the original disks to the vault.</summary>
    Protected,
    /// <summary>The vault's replica can no longer be trusted to match the change tracker; the next cycle compares checksums.</summary>
    ResyncRequired,
    /// <summary>A drill is running; replication to the vault continues.</summary>
    TestFailedOver,
    /// <summary>Failed over to the recovery target; the recovery point can still be changed, or the failover cancelled.</summary>
    FailedOver,
    /// <summary>Failover committed: the recovered disks are the machine now.</summary>
    Committed,
    /// <summary>Replicating in the reverse direction: recovered disks → original site.</summary>
    Reprotected,
}

public enum ReplicationHealth { Normal, Warning, Critical }

/// <summary>Which copy of the disks is the running machine.</summary>
public enum ActiveLocation { Primary, Recovery }
