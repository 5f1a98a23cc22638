namespace AsrModule.Engine.Plans;

public enum PlanTaskKind { StepBefore, StepAfter, Machine, Pause, PlanStep }
public enum PlanTaskState { Pending, InProgress, Succeeded, Failed, Skipped, Waiting }

/// <summary>
/// One unit of a plan run, persisted in the job record. Tasks are derived deterministically from the
/// plan and the failover type, so a run resumed in another process finds the same list.
/// </summary>
public sealed class PlanTask
{
    public int Index { get; set; }
    public PlanTaskKind Kind { get; set; }
    public string Name { get; set; } = "";
    public int? GroupId { get; set; }
    public string? Item { get; set; }
    public int? StepId { get; set; }
    public PlanTaskState State { get; set; }
    public DateTimeOffset? StartTimeUtc { get; set; }
    public DateTimeOffset? EndTimeUtc { get; set; }
    public string? Error { get; set; }
    public string? Output { get; set; }
    /// <summary>A machine task of a Test run with -Boot: the drilled machine's boot verification.</summary>
    public Failover.Boot.BootVerificationResult? Boot { get; set; }
    public override string ToString() => $"{Index}: {Name} ({State})";
    internal PlanTask CloneTask() => (PlanTask)MemberwiseClone();
}
