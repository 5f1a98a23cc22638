using AsrModule.Engine.Events;
using AsrModule.Engine.Failover.Boot;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Reports;

/// <summary>Everything a health report shows, read from the vault at one moment (<see cref="HealthReportCollector"/>).</summary>
public sealed class HealthReportData
{
    public string VaultLocation { get; init; } = "";
    public string VaultId { get; init; } = "";
    public bool Encrypted { get; init; }
    public DateTimeOffset GeneratedUtc { get; init; }
    public int Days { get; init; }
    public List<ReportItem> Items { get; init; } = [];
    /// <summary>Drill boot verifications, newest first.</summary>
    public List<DrillResultRecord> Drills { get; init; } = [];
    /// <summary>Booted plan drills (Start-AsrRecoveryPlan -FailoverType Test -Boot), newest first.</summary>
    public List<ReportPlanDrill> PlanDrills { get; init; } = [];
    /// <summary>Jobs of the report's period, newest first.</summary>
    public List<AsrJob> Jobs { get; init; } = [];
    public List<AsrEvent> Events { get; init; } = [];
    /// <summary>Measured vault sizes (each report lists the vault and keeps a sample), oldest first.</summary>
    public List<VaultSizeSample> SizeSamples { get; init; } = [];
    /// <summary>Records the report could not read (damaged or not valid): key and why. They are left out, not trusted.</summary>
    public List<string> Skipped { get; init; } = [];
}

/// <summary>A protected item as the report shows it: its record (state, health, RPO now), policy threshold and kept points.</summary>
public sealed class ReportItem
{
    public required AsrProtectedItem Item { get; init; }
    public int? RpoThresholdMinutes { get; init; }
    public List<ReportPoint> Points { get; init; } = [];
}

public sealed record ReportPoint(long Sequence, DateTimeOffset TimeUtc, RecoveryPointConsistency Consistency, long StoredBytes);

/// <summary>A plan's booted Test run: its machines' boots and the recovery time (start of the run until the last machine was ready).</summary>
public sealed record ReportPlanDrill(string PlanName, Guid JobId, DateTimeOffset StartedUtc, string State, int Machines, int Ready, double? AllReadyAfterSeconds);

/// <summary>A measurement of the vault's size: objects and bytes under items/ (the disks' data and metadata) and in all.</summary>
public sealed class VaultSizeSample
{
    public DateTimeOffset TimeUtc { get; set; }
    public long Objects { get; set; }
    public long Bytes { get; set; }
    public long ItemBytes { get; set; }
}
