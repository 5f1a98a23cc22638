namespace AsrModule.Engine.Plans;

/// <summary>What a suspended or interrupted plan run needs to be continued by any process.</summary>
public sealed class PlanRunRecord
{
    public string PlanName { get; set; } = "";
    public string PlanPath { get; set; } = "";
    /// <summary>SHA-256 of the plan file when the run started: a changed plan is not resumed silently.</summary>
    public string PlanSha256 { get; set; } = "";
    public PlanFailoverType FailoverType { get; set; }
    /// <summary>A local target's directory (Local targets only; kept for records written before target kinds).</summary>
    public string? TargetPath { get; set; }
    /// <summary>The target's kind ("Local", "Azure") and location (no credential: a continuation in another process needs the target again).</summary>
    public string? TargetKind { get; set; }
    public string? TargetLocation { get; set; }
    /// <summary>A local target's disk format (<see cref="Replication.Sources.Images.DiskOutputFormat"/>; null: raw), so a continued run writes the same format.</summary>
    public string? TargetDiskFormat { get; set; }
    /// <summary>A Test run that boots every drilled machine (Start-AsrRecoveryPlan -Boot) with the plan's AsrBootCheck settings.</summary>
    public bool Boot { get; set; }
    /// <summary>The first task not yet done.</summary>
    public int NextTask { get; set; }
    public string? PauseMessage { get; set; }
    public List<string> Comments { get; set; } = new();
    /// <summary>How many times the run was continued (resume, restart) or stopped while suspended; names the claim each takes.</summary>
    public int Attempt { get; set; }

    /// <summary>The vault key that exactly one continuation (or stop) of attempt <paramref name="attempt"/> can create.</summary>
    public static string ClaimKey(Guid jobId, int attempt) => $"locks/job-{jobId:N}-attempt-{attempt}.claim";
}
