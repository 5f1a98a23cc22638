namespace AsrModule.Engine.Items;

/// <summary>Where a protected item is in its lifecycle. Persisted in the vault.</summary>
public enum ProtectedItemState
{
    /// <summary>Registered; initial replication has not completed yet.</summary>
    InitialReplicationPending,
    /// <summary>Has at least one recovery point; delta cycles run.</summary>
    Protected,
    /// <summary>The replica can no longer be trusted to match the change tracker (disk resize, lost tracker, failed transfer); the next cycle compares checksums.</summary>
    ResyncRequired,
}

public enum ReplicationHealth { Normal, Warning, Critical }
