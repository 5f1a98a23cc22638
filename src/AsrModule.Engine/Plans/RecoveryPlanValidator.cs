using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Plans;

/// <summary>Everything that can be checked before a plan runs: it either runs, or nothing happens.</summary>
public static class RecoveryPlanValidator
{
    public static async Task<Dictionary<string, AsrProtectedItem>> ValidateAsync(AsrVault vault, RecoveryPlan plan, PlanFailoverType type, string source, CancellationToken ct,
        bool checkStates = true, bool boot = false)
    {
        var problems = new List<string>();
        if (boot && type != PlanFailoverType.Test) problems.Add($"-Boot boots drills: it goes with -FailoverType Test, not {type}");
        else if (boot)
            foreach (var name in plan.Groups.Where(g => g.AppliesTo(type)).SelectMany(g => g.Items).Where(n => !plan.Boot.ContainsKey(n)))
                problems.Add($"machine '{name}' has no boot settings for -Boot (add AsrBootCheck -Items {name} -ReadyPattern ... or -ReadyPort ...)");
        foreach (var name in plan.Boot.Keys.Where(n => !plan.Groups.Any(g => g.Items.Contains(n, StringComparer.OrdinalIgnoreCase))))
            problems.Add($"AsrBootCheck names '{name}', which is in no group");
        if (string.IsNullOrWhiteSpace(plan.Name)) problems.Add("the plan has no name");
        var groups = plan.Groups.ToList();
        if (groups.Count == 0) problems.Add("the plan has no group");
        foreach (var dup in groups.GroupBy(g => g.Number).Where(g => g.Count() > 1))
            problems.Add($"group number {dup.Key} is used {dup.Count()} times");
        var numbers = groups.Select(g => g.Number).ToList();
        if (!numbers.SequenceEqual(numbers.Order()))
            problems.Add($"groups must appear in ascending order (found {string.Join(", ", numbers)})");
        foreach (var twice in groups.SelectMany(g => g.Items.Select(i => (Item: i.ToLowerInvariant(), g.Number))).GroupBy(x => x.Item).Where(x => x.Count() > 1))
            problems.Add($"machine '{twice.Key}' is in groups {string.Join(" and ", twice.Select(x => x.Number))}");
        foreach (var g in groups.Where(g => g.Items.Count == 0))
            problems.Add($"group {g.Number} has no machines");

        var items = new Dictionary<string, AsrProtectedItem>(StringComparer.OrdinalIgnoreCase);
        var inVault = (await vault.GetItemsAsync(ct).ConfigureAwait(false)).ToDictionary(i => i.Name, StringComparer.OrdinalIgnoreCase);
        foreach (var name in groups.SelectMany(g => g.Items).Distinct(StringComparer.OrdinalIgnoreCase))
        {
            if (!inVault.TryGetValue(name, out var item)) { problems.Add($"machine '{name}' is not a protected item of the vault"); continue; }
            items[name] = item;
            var op = OperationOf(type);
            if (checkStates && !ItemStateMachine.IsAllowed(item.State, op))
                problems.Add($"'{item.Name}' is {item.State}: {ItemStateMachine.CommandOf(op)} is not allowed (allowed: {string.Join(", ", item.AllowedOperations)})");
        }
        if (problems.Count > 0)
            throw new AsrException(AsrErrorIds.RecoveryPlanInvalid, AsrErrorKind.InvalidArgument,
                $"Recovery plan '{plan.Name}' ({source}) cannot run a {type} failover; nothing was started: {string.Join("; ", problems)}.", plan.Name);
        return items;
    }

    public static ItemOperation OperationOf(PlanFailoverType type) => type switch
    {
        PlanFailoverType.Test => ItemOperation.TestFailover,
        PlanFailoverType.TestCleanup => ItemOperation.TestFailoverCleanup,
        PlanFailoverType.Planned or PlanFailoverType.Unplanned => ItemOperation.Failover,
        PlanFailoverType.Commit => ItemOperation.CommitFailover,
        PlanFailoverType.Reprotect => ItemOperation.Reprotect,
        PlanFailoverType.Failback => ItemOperation.Failback,
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>The task list of a run: deterministic for a plan and a failover type.</summary>
    public static List<PlanTask> Tasks(RecoveryPlan plan, PlanFailoverType type)
    {
        var tasks = new List<PlanTask>();
        void Add(PlanTaskKind kind, string name, int? group = null, string? item = null, int? step = null) =>
            tasks.Add(new PlanTask { Index = tasks.Count, Kind = kind, Name = name, GroupId = group, Item = item, StepId = step });
        foreach (var e in plan.Elements.Where(e => e.AppliesTo(type)))
        {
            switch (e)
            {
                case PlanGroup g:
                    foreach (var s in g.Steps.Where(s => s.HasBefore && s.AppliesTo(type))) Add(PlanTaskKind.StepBefore, $"Group {g.Number}: {s.Name} (before)", g.Number, step: s.Id);
                    foreach (var i in g.Items) Add(PlanTaskKind.Machine, $"Group {g.Number}: {type} {i}", g.Number, i);
                    foreach (var s in g.Steps.Where(s => s.HasAfter && s.AppliesTo(type))) Add(PlanTaskKind.StepAfter, $"Group {g.Number}: {s.Name} (after)", g.Number, step: s.Id);
                    break;
                case PlanPause p:
                    Add(PlanTaskKind.Pause, $"Pause: {p.Message}");
                    break;
                case PlanStep s:
                    Add(PlanTaskKind.PlanStep, s.Name, step: s.Id);
                    break;
            }
        }
        return tasks;
    }
}
