namespace AsrModule.Engine.Plans;

/// <summary>
/// What every plan step receives, shaped like the reference service's runbook context so existing
/// runbooks port easily: plan name, failover type and direction, the group, and the machine map.
/// </summary>
public sealed class PlanContext
{
    public string RecoveryPlanName { get; set; } = "";
    public string FailoverType { get; set; } = "";
    public string FailoverDirection { get; set; } = "";
    public int? GroupId { get; set; }
    public string JobId { get; set; } = "";
    /// <summary>machine name → what it became in this run (recovered disks, drill exports, point).</summary>
    public Dictionary<string, PlanVm> VmMap { get; set; } = new(StringComparer.OrdinalIgnoreCase);
}

public sealed class PlanVm
{
    public string Name { get; set; } = "";
    public string State { get; set; } = "";
    public long? RecoveryPointSequence { get; set; }
    /// <summary>The drill directory, the recovered machine's directory, or the Azure VM's resource id.</summary>
    public string? TargetPath { get; set; }
    /// <summary>"Local" or "Azure" once recovered.</summary>
    public string? TargetKind { get; set; }
    /// <summary>The recovered VM's resource id (Azure), or null.</summary>
    public string? VirtualMachineId { get; set; }
    /// <summary>disk name → recovered disk file (failover), nbd:// URI (local drill) or managed disk resource id (Azure).</summary>
    public Dictionary<string, string> Disks { get; set; } = new();
}

/// <summary>Runs a plan's script steps (the PowerShell layer implements it).</summary>
public interface IPlanStepRunner
{
    /// <summary>Runs step <paramref name="stepId"/>'s Before or After block with the context; returns its output as text; throws on failure.</summary>
    Task<string?> RunStepAsync(int stepId, bool before, PlanContext context, CancellationToken cancellationToken);

    /// <summary>Runs the check of boot setting <paramref name="bootId"/> (AsrBootCheck -Check) on a machine that is ready.</summary>
    Task<Failover.Boot.BootCheckOutcome> RunBootCheckAsync(int bootId, Failover.Boot.BootCheckInput input, CancellationToken cancellationToken);
}

/// <summary>Thrown by a plan run that reached a pause: the job is suspended, not failed.</summary>
public sealed class JobSuspendedException(string message) : Exception(message);
