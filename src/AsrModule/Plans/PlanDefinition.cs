using System.Management.Automation;
using AsrModule.Engine.Failover.Boot;
using AsrModule.Engine.Plans;

namespace AsrModule.Plans;

/// <summary>
/// A recovery plan as its script built it: the engine's model plus the step script blocks (which
/// belong to the runspace that evaluated the plan file). Filled by the plan DSL (AsrRecoveryPlan,
/// AsrGroup, AsrStep, AsrPause in AsrModule.Plans.psm1).
/// </summary>
public sealed class PlanDefinition
{
    private int _nextStepId = 1;

    public PlanDefinition(string name) => Plan = new RecoveryPlan { Name = name };

    public RecoveryPlan Plan { get; }
    public string Name => Plan.Name;
    internal Dictionary<int, (ScriptBlock? Before, ScriptBlock? After)> StepScripts { get; } = new();
    internal Dictionary<int, ScriptBlock> BootChecks { get; } = new();
    private int _nextBootId = 1;

    /// <summary>
    /// How <paramref name="items"/> are booted when a Test run boots its drills (AsrBootCheck); settings are validated now,
    /// so a plan with a bad pattern or port does not load.
    /// </summary>
    public PlanBoot AddBoot(string[] items, string? readyPattern, int? readyPort, int[] forwardPorts, int timeoutSeconds, int memoryMiB, int cpus,
        string diskBus, string nicModel, ScriptBlock? check) =>
        AddBoot(items, new BootOptions
        {
            ReadyPattern = string.IsNullOrEmpty(readyPattern) ? null : readyPattern,
            ReadyPort = readyPort,
            ForwardPorts = forwardPorts,
            Timeout = TimeSpan.FromSeconds(timeoutSeconds),
            MemoryMiB = memoryMiB,
            Cpus = cpus,
            DiskBus = Enum.Parse<BootDiskBus>(diskBus, ignoreCase: true),
            NicModel = nicModel,
        }, check);

    private PlanBoot AddBoot(string[] items, BootOptions options, ScriptBlock? check)
    {
        if (items.Length == 0) throw new ArgumentException("AsrBootCheck needs -Items (or to be inside an AsrGroup).");
        try { options.Validate(); }
        catch (Engine.Errors.AsrException ex) { throw new ArgumentException($"AsrBootCheck for {string.Join(", ", items)}: {ex.Message}"); }
        var boot = new PlanBoot { Id = _nextBootId++, Options = options, HasCheck = check is not null };
        if (check is not null) BootChecks[boot.Id] = check;
        foreach (var item in items)
        {
            if (Plan.Boot.ContainsKey(item)) throw new ArgumentException($"AsrBootCheck: '{item}' has boot settings already.");
            Plan.Boot[item] = boot;
        }
        return boot;
    }

    public PlanGroup AddGroup(int number, string[] items, string[]? failoverTypes, string[]? directions)
    {
        var group = new PlanGroup { Number = number, Items = items.ToList() };
        Filter(group, failoverTypes, directions);
        Plan.Elements.Add(group);
        return group;
    }

    public PlanStep AddStep(PlanGroup? group, string name, ScriptBlock? before, ScriptBlock? after, string[]? failoverTypes, string[]? directions, bool continueOnError, int timeoutSeconds = 3600)
    {
        if (timeoutSeconds < 1) throw new ArgumentException($"Step '{name}': -TimeoutSeconds must be at least 1.");
        if (before is null && after is null)
            throw new ArgumentException($"Step '{name}' needs -Before and/or -After.");
        if (group is null && before is not null && after is not null)
            throw new ArgumentException($"Step '{name}' is outside any group: give it one script block (-Before or -After), it runs at its place in the plan.");
        var step = new PlanStep { Id = _nextStepId++, Name = name, HasBefore = before is not null, HasAfter = after is not null, ContinueOnError = continueOnError, TimeoutSeconds = timeoutSeconds };
        Filter(step, failoverTypes, directions);
        StepScripts[step.Id] = (before, after);
        if (group is null)
        {
            // A plan-level step runs where it stands, with whichever block it has.
            step.HasBefore = true;
            step.HasAfter = false;
            StepScripts[step.Id] = (before ?? after, null);
            Plan.Elements.Add(step);
        }
        else
        {
            group.Steps.Add(step);
        }
        return step;
    }

    public PlanPause AddPause(string message, string[]? failoverTypes, string[]? directions)
    {
        var pause = new PlanPause { Message = message };
        Filter(pause, failoverTypes, directions);
        Plan.Elements.Add(pause);
        return pause;
    }

    private static void Filter(PlanElement element, string[]? failoverTypes, string[]? directions)
    {
        foreach (var t in failoverTypes ?? []) element.FailoverTypes.Add(Enum.Parse<PlanFailoverType>(t, ignoreCase: true));
        foreach (var d in directions ?? []) element.Directions.Add(Enum.Parse<PlanDirection>(d, ignoreCase: true));
    }

    public override string ToString() => $"{Name} ({Plan.Groups.Count()} group(s))";
}
