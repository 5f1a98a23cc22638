namespace AsrModule.Engine.Items;

public enum FailoverType { Planned, Unplanned }

/// <summary>A drill in progress: what it serves and what it made (so cleanup removes exactly that).</summary>
public sealed class TestFailoverRecord
{
    public Guid Id { get; set; }
    public long RecoveryPointSequence { get; set; }
    public DateTimeOffset RecoveryPointTimeUtc { get; set; }
    /// <summary>Directory the drill owns: overlays and machine.json. Removed by cleanup.</summary>
    public string Directory { get; set; } = "";
    public DateTimeOffset StartedUtc { get; set; }
    public int OwnerProcessId { get; set; }
    public string OwnerHost { get; set; } = "";
    /// <summary>disk name → nbd:// URI served while the drill's process runs.</summary>
    public Dictionary<string, string> Exports { get; set; } = new();
    public Guid JobId { get; set; }
    /// <summary>The machine the drill made in a target that runs machines (Azure), or null for a drill served over NBD.</summary>
    public Failover.RecoveredMachineRecord? Machine { get; set; }
    /// <summary>The last boot verification of this drill (Test-AsrTestFailover -Boot), or null.</summary>
    public Failover.Boot.BootVerificationResult? Boot { get; set; }
}

/// <summary>An operation that owns the item exclusively while its job runs (drills must not start meanwhile).</summary>
public sealed class ExclusiveOperationRecord
{
    public string Operation { get; set; } = "";
    public Guid JobId { get; set; }
    public int OwnerProcessId { get; set; }
    public string OwnerHost { get; set; } = "";
}

/// <summary>The failover in effect.</summary>
public sealed class FailoverRecord
{
    public FailoverType Type { get; set; }
    public long RecoveryPointSequence { get; set; }
    public DateTimeOffset RecoveryPointTimeUtc { get; set; }
    /// <summary>Where the machine is: the directory holding the recovered disks and machine.json, or the Azure VM's resource id.</summary>
    public string TargetPath { get; set; } = "";
    /// <summary>disk id → recovered disk: a file, or a managed disk's resource id.</summary>
    public Dictionary<string, string> RecoveredDisks { get; set; } = new();
    /// <summary>What the failover made, with its target's kind and location (null in records written before targets other than local ones).</summary>
    public Failover.RecoveredMachineRecord? Machine { get; set; }
    public DateTimeOffset FailedOverUtc { get; set; }
    public DateTimeOffset? CommittedUtc { get; set; }
}

/// <summary>Replication from the recovered disks back to the original site (or an alternate location).</summary>
public sealed class ReverseReplicationRecord
{
    /// <summary>disk id → disk at the original site (or the alternate location) being written.</summary>
    public Dictionary<string, string> TargetDisks { get; set; } = new();
    /// <summary>disk id → identity of the target disk when reprotect wrote it (see <see cref="ProtectedDisk.SourceIdentity"/>).</summary>
    public Dictionary<string, string>? TargetIdentities { get; set; }
    /// <summary>
    /// disk id → image format ("qcow2", "vmdk", "vhdx", "vdi") of a target disk written through QEMU; a disk not listed is raw.
    /// Null in records made before formats: the original disks then have their <see cref="ProtectedDisk.SourceFormat"/>, alternates are raw.
    /// </summary>
    public Dictionary<string, string>? TargetFormats { get; set; }
    public bool AlternateLocation { get; set; }
    public DateTimeOffset StartedUtc { get; set; }
    public DateTimeOffset? LastSyncUtc { get; set; }
    public long BytesSent { get; set; }
}

/// <summary>The last drill's outcome, kept on the item after cleanup.</summary>
public sealed class TestFailoverSummary
{
    public Guid Id { get; set; }
    public long RecoveryPointSequence { get; set; }
    public DateTimeOffset StartedUtc { get; set; }
    public DateTimeOffset CleanedUpUtc { get; set; }
    public string? Comment { get; set; }
    /// <summary>The drill's last boot verification, or null when it was not booted.</summary>
    public Failover.Boot.BootVerificationResult? Boot { get; set; }
}
