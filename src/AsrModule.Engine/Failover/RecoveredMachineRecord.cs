namespace AsrModule.Engine.Failover;

/// <summary>
/// What a failover or drill made on its target, kept on the item (<see cref="Items.FailoverRecord.Machine"/>,
/// <see cref="Items.TestFailoverRecord.Machine"/>). Vault data: shown and used to find the target again, never
/// obeyed on its own (a target re-derives what to delete and checks the record is its own).
/// </summary>
public sealed class RecoveredMachineRecord
{
    /// <summary>The <see cref="IRecoveryTarget.Kind"/> that made it.</summary>
    public string TargetKind { get; set; } = "";
    /// <summary>The <see cref="IRecoveryTarget.Location"/> that made it.</summary>
    public string TargetLocation { get; set; } = "";
    /// <summary>The operation (failover, change of point, drill) whose mark everything made carries (Azure: the asr-operation tag).</summary>
    public Guid OperationId { get; set; }
    /// <summary>The machine: a directory (local failover) or a VM's resource id (Azure).</summary>
    public string MachineId { get; set; } = "";
    /// <summary>disk id → recovered disk: a file, or a managed disk's resource id.</summary>
    public Dictionary<string, string> Disks { get; set; } = new();
    /// <summary>What else a person wants to know (region, size, subnet, VM id inside Azure); no secret.</summary>
    public Dictionary<string, string> Properties { get; set; } = new();
}
