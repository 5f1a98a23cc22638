namespace AsrModule.Engine.Plans;

/// <summary>What a plan run does to every machine of the plan.</summary>
public enum PlanFailoverType { Test, TestCleanup, Planned, Unplanned, Commit, Reprotect, Failback }

public enum PlanDirection { PrimaryToRecovery, RecoveryToPrimary }

/// <summary>
/// A recovery plan, as its script declares it: ordered elements (groups, pauses, plan-level steps).
/// Script blocks are not part of the model; steps are referred to by <see cref="PlanStep.Id"/> and the
/// PowerShell layer runs them.
/// </summary>
public sealed class RecoveryPlan
{
    public string Name { get; set; } = "";
    public List<PlanElement> Elements { get; set; } = new();

    public IEnumerable<PlanGroup> Groups => Elements.OfType<PlanGroup>();

    /// <summary>How each machine is booted when a Test run boots its drills (AsrBootCheck), by item name (case-insensitive).</summary>
    public Dictionary<string, PlanBoot> Boot { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    public static PlanDirection DirectionOf(PlanFailoverType type) =>
        type == PlanFailoverType.Failback ? PlanDirection.RecoveryToPrimary : PlanDirection.PrimaryToRecovery;
}

public abstract class PlanElement
{
    /// <summary>Failover types this element applies to; empty = all.</summary>
    public List<PlanFailoverType> FailoverTypes { get; set; } = new();
    /// <summary>Directions this element applies to; empty = both.</summary>
    public List<PlanDirection> Directions { get; set; } = new();

    public bool AppliesTo(PlanFailoverType type) =>
        (FailoverTypes.Count == 0 || FailoverTypes.Contains(type)) && (Directions.Count == 0 || Directions.Contains(RecoveryPlan.DirectionOf(type)));
}

/// <summary>Machines that fail over together (in parallel), with steps before and after them.</summary>
public sealed class PlanGroup : PlanElement
{
    public int Number { get; set; }
    public List<string> Items { get; set; } = new();
    public List<PlanStep> Steps { get; set; } = new();
}

/// <summary>A script step; <see cref="HasBefore"/>/<see cref="HasAfter"/> say when it runs around its group.</summary>
public sealed class PlanStep : PlanElement
{
    public int Id { get; set; }
    public string Name { get; set; } = "";
    public bool HasBefore { get; set; }
    public bool HasAfter { get; set; }
    public bool ContinueOnError { get; set; }
    /// <summary>A step still running after this long is stopped and fails.</summary>
    public int TimeoutSeconds { get; set; } = 3600;
}

/// <summary>
/// A machine's boot verification in a Test run started with -Boot: its settings, and whether the plan file gave it a
/// check (run in the plan's runspace by <see cref="IPlanStepRunner.RunBootCheckAsync"/>, referred to by <see cref="Id"/>).
/// </summary>
public sealed class PlanBoot
{
    public int Id { get; set; }
    public Failover.Boot.BootOptions Options { get; set; } = new();
    public bool HasCheck { get; set; }
}

/// <summary>A manual action: the plan's job is suspended here until someone resumes it.</summary>
public sealed class PlanPause : PlanElement
{
    public string Message { get; set; } = "";
}
