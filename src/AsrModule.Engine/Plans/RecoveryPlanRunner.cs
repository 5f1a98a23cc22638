using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Failover.Boot;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Plans;

/// <summary>
/// Runs a recovery plan's tasks from the run's cursor: groups in order, the machines of a group in
/// parallel (each through the same lifecycle services the cmdlets use), script steps through
/// <see cref="IPlanStepRunner"/>, and a pause suspends the job until someone resumes it (from any
/// process). The job record is saved at every task change, so another session sees each step and a
/// run whose process died can be restarted at its first unfinished task.
/// </summary>
public sealed class RecoveryPlanRunner
{
    private readonly AsrVault _vault;
    private readonly RecoveryPlan _plan;
    private readonly IPlanStepRunner _steps;
    private readonly IRecoveryTarget? _target;

    /// <param name="target">The target given to this process (Start-AsrRecoveryPlan -Target, Resume-AsrJob -Target), or null to find it from the run record.</param>
    public RecoveryPlanRunner(AsrVault vault, RecoveryPlan plan, IPlanStepRunner steps, IRecoveryTarget? target = null)
    {
        _vault = vault;
        _plan = plan;
        _steps = steps;
        _target = target;
    }

    public async Task<AsrJobResult> RunAsync(JobContext context)
    {
        var job = context.Job;
        var run = job.Plan!;
        var tasks = job.Tasks!;
        var ct = context.CancellationToken;
        var planContext = new PlanContext
        {
            RecoveryPlanName = _plan.Name,
            FailoverType = run.FailoverType.ToString(),
            FailoverDirection = RecoveryPlan.DirectionOf(run.FailoverType).ToString(),
            JobId = job.Id.ToString(),
        };
        await RefreshVmMapAsync(planContext, ct).ConfigureAwait(false);
        int i = run.NextTask;
        while (i < tasks.Count)
        {
            ct.ThrowIfCancellationRequested();
            var task = tasks[i];
            context.Report(100 * i / Math.Max(1, tasks.Count), task.Name);
            if (task.Kind == PlanTaskKind.Pause)
            {
                if (task.State != PlanTaskState.Succeeded)
                {
                    // Suspend here; Resume-AsrJob marks the pause done and continues after it.
                    await UpdateAsync(job, () => { task.State = PlanTaskState.Waiting; task.StartTimeUtc ??= DateTimeOffset.UtcNow; run.NextTask = i; run.PauseMessage = task.Name["Pause: ".Length..]; }).ConfigureAwait(false);
                    throw new JobSuspendedException($"Waiting at '{run.PauseMessage}'. Resume with Resume-AsrJob -Id {job.Id}.");
                }
                i++;
                continue;
            }
            // The machines of one group fail over together.
            var span = task.Kind == PlanTaskKind.Machine
                ? tasks.Skip(i).TakeWhile(t => t.Kind == PlanTaskKind.Machine && t.GroupId == task.GroupId).ToList()
                : [task];
            // A restarted group runs only what has not succeeded yet.
            var batch = span.Where(t => t.State != PlanTaskState.Succeeded).ToList();
            planContext.GroupId = task.GroupId;
            await UpdateAsync(job, () => { foreach (var t in batch) { t.State = PlanTaskState.InProgress; t.StartTimeUtc = DateTimeOffset.UtcNow; t.Error = null; } }).ConfigureAwait(false);
            string? fatal = null;
            // Each result is saved as soon as it is known, so a crash mid-group loses no finished machine.
            await Task.WhenAll(batch.Select(async t =>
            {
                var (ok, message, output, continueOnError, boot) = await RunTaskAsync(t, planContext, run, context).ConfigureAwait(false);
                await UpdateAsync(job, () =>
                {
                    t.Boot = boot;
                    t.EndTimeUtc = DateTimeOffset.UtcNow;
                    t.State = ok ? PlanTaskState.Succeeded : PlanTaskState.Failed;
                    t.Error = ok ? null : message;
                    t.Output = output;
                    if (!ok && !continueOnError) fatal ??= $"Task '{t.Name}' failed: {message}";
                }).ConfigureAwait(false);
            })).ConfigureAwait(false);
            await UpdateAsync(job, () => run.NextTask = fatal is null ? i + span.Count : i).ConfigureAwait(false);
            if (fatal is not null)
                throw new AsrException(AsrErrorIds.RecoveryPlanStepFailed, AsrErrorKind.InvalidOperation,
                    fatal + $" The plan stopped; fix the cause and continue with Restart-AsrJob -Id {job.Id}.", _plan.Name);
            if (task.Kind == PlanTaskKind.Machine) await RefreshVmMapAsync(planContext, ct).ConfigureAwait(false);
            i += span.Count;
        }
        context.Report(100, $"Recovery plan '{_plan.Name}' ({run.FailoverType}) completed: {tasks.Count} task(s)");
        return new AsrJobResult { Mode = $"RecoveryPlan{run.FailoverType}", Note = $"{tasks.Count(t => t.State == PlanTaskState.Succeeded)} task(s) succeeded" + ReadySummary(job) };
    }

    /// <summary>A booted Test run's recovery time: from the run's start until its last machine was ready.</summary>
    internal static string ReadySummary(AsrJob job) => job.BootReadiness is { Ready: > 0 } readiness
        ? $"; {readiness.Ready} machine(s) booted and ready, the last {readiness.LastReadyAfterSeconds:0.0} s after the run started"
        : "";

    private async Task<(bool Ok, string? Message, string? Output, bool ContinueOnError, BootVerificationResult? Boot)> RunTaskAsync(PlanTask task, PlanContext planContext, PlanRunRecord run, JobContext context)
    {
        var step = task.StepId is { } id ? FindStep(id) : null;
        try
        {
            switch (task.Kind)
            {
                case PlanTaskKind.Machine:
                    var boot = await RunMachineAsync(task.Item!, run, context).ConfigureAwait(false);
                    return (true, null, boot?.ToString(), false, boot);
                default:
                    string? output = await _steps.RunStepAsync(task.StepId!.Value, task.Kind != PlanTaskKind.StepAfter, planContext, context.CancellationToken).ConfigureAwait(false);
                    return (true, null, output, step?.ContinueOnError ?? false, null);
            }
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            context.Logger.LogWarning(ex, "Plan task {Task} failed", task.Name);
            return (false, ex.Message, null, step?.ContinueOnError ?? false, (ex as AsrException)?.PartialResult?.Boot);
        }
    }

    private PlanStep? FindStep(int id) =>
        _plan.Elements.OfType<PlanStep>().Concat(_plan.Groups.SelectMany(g => g.Steps)).FirstOrDefault(s => s.Id == id);

    /// <summary>One machine's part of the run, through the same services (and locks) as the cmdlets; a booted drill's result.</summary>
    private async Task<BootVerificationResult?> RunMachineAsync(string name, PlanRunRecord run, JobContext context)
    {
        var ct = context.CancellationToken;
        var item = await _vault.GetItemAsync(name, ct).ConfigureAwait(false);
        var replication = new ReplicationService(_vault);
        var failover = new FailoverService(_vault);
        var target = ResolveTarget(run);
        // Each machine gets a child context: its own progress must not overwrite the plan's.
        var machineContext = new JobContext(context.Job, ct, null, context.Logger);
        switch (run.FailoverType)
        {
            case PlanFailoverType.Test:
                // A restarted booted run boots a drill it started before instead of starting another.
                if (!(run.Boot && item.State == ProtectedItemState.TestFailedOver && item.TestFailover is { Machine: null }))
                    await new TestFailoverService(_vault).StartAsync(item, RecoveryPointChoice.LatestProcessed, Require(target), null, machineContext).ConfigureAwait(false);
                if (run.Boot) return await BootAsync(name, machineContext).ConfigureAwait(false);
                break;
            case PlanFailoverType.TestCleanup:
                await new TestFailoverService(_vault).CleanupAsync(item, $"Recovery plan '{_plan.Name}' (job {context.Job.Id})", _target, machineContext).ConfigureAwait(false);
                break;
            case PlanFailoverType.Planned:
                using (await replication.PrepareCycleAsync(item, false, ct).ConfigureAwait(false))
                    await failover.FailoverAsync(item, FailoverType.Planned, RecoveryPointChoice.LatestProcessed, Require(target), machineContext).ConfigureAwait(false);
                break;
            case PlanFailoverType.Unplanned:
                using (replication.AcquireLease(item))
                    await failover.FailoverAsync(item, FailoverType.Unplanned, RecoveryPointChoice.LatestProcessed, Require(target), machineContext).ConfigureAwait(false);
                break;
            case PlanFailoverType.Commit:
                using (replication.AcquireLease(item)) await failover.CommitAsync(item, machineContext).ConfigureAwait(false);
                break;
            case PlanFailoverType.Reprotect:
                using (replication.AcquireLease(item)) await failover.ReprotectAsync(item, null, _target, machineContext).ConfigureAwait(false);
                break;
            case PlanFailoverType.Failback:
                using (replication.AcquireLease(item)) await failover.FailbackAsync(item, _target, machineContext).ConfigureAwait(false);
                break;
        }
        return null;
    }

    /// <summary>Boots the machine's drill with the plan's settings for it; its check runs in the plan's runspace.</summary>
    private async Task<BootVerificationResult?> BootAsync(string name, JobContext machineContext)
    {
        var settings = _plan.Boot[name];
        var item = await _vault.GetItemAsync(name, machineContext.CancellationToken).ConfigureAwait(false);
        BootCheck? check = settings.HasCheck ? (input, ct) => _steps.RunBootCheckAsync(settings.Id, input, ct) : null;
        var result = await new DrillBootVerifier(_vault).BootAsync(item, settings.Options, check, machineContext).ConfigureAwait(false);
        return result.Boot;
    }

    /// <summary>The run's target: the one given to this process, the local directory the run names, or one registered in this process.</summary>
    private IRecoveryTarget? ResolveTarget(PlanRunRecord run)
    {
        if (_target is not null) return _target;
        if (run.TargetKind is { } kind && kind != AsrLocalTarget.LocalKind && run.TargetLocation is { } location)
            return RecoveryTargets.Find(kind, location)
                   ?? throw new AsrException(AsrErrorIds.RecoveryTargetRequired, AsrErrorKind.InvalidOperation,
                       $"This run fails over to {kind} target '{location}', which this session does not know; pass -Target to Resume-AsrJob (or create the target in this session first).", _plan.Name);
        return run.TargetPath is null ? null
            : new AsrLocalTarget(run.TargetPath, Replication.Sources.Images.DiskOutputFormats.Parse(run.TargetDiskFormat, $"Recovery plan run '{_plan.Name}'"));
    }

    private static IRecoveryTarget Require(IRecoveryTarget? target) =>
        target ?? throw new AsrException(AsrErrorIds.RecoveryPlanInvalid, AsrErrorKind.InvalidArgument, "This failover type needs -Target.", null);

    private async Task RefreshVmMapAsync(PlanContext planContext, CancellationToken ct)
    {
        foreach (var name in _plan.Groups.SelectMany(g => g.Items))
        {
            var item = await _vault.GetItemAsync(name, ct).ConfigureAwait(false);
            var vm = new PlanVm { Name = item.Name, State = item.State.ToString() };
            if (item.TestFailover is { } drill)
            {
                vm.RecoveryPointSequence = drill.RecoveryPointSequence;
                vm.TargetPath = drill.Machine?.MachineId ?? drill.Directory;
                vm.TargetKind = drill.Machine?.TargetKind ?? AsrLocalTarget.LocalKind;
                vm.VirtualMachineId = drill.Machine is { TargetKind: not AsrLocalTarget.LocalKind } m ? m.MachineId : null;
                vm.Disks = drill.Machine is { } dm
                    ? item.Disks.ToDictionary(d => d.Name, d => dm.Disks.GetValueOrDefault(d.DiskId, ""))
                    : new Dictionary<string, string>(drill.Exports);
            }
            else if (item.Failover is { } f)
            {
                vm.RecoveryPointSequence = f.RecoveryPointSequence;
                vm.TargetPath = f.TargetPath;
                var fm = AsrLocalTarget.MachineOf(f);
                vm.TargetKind = fm.TargetKind;
                vm.VirtualMachineId = fm.TargetKind != AsrLocalTarget.LocalKind ? fm.MachineId : null;
                vm.Disks = item.Disks.ToDictionary(d => d.Name, d => f.RecoveredDisks.GetValueOrDefault(d.DiskId, ""));
            }
            else
            {
                vm.Disks = item.Disks.ToDictionary(d => d.Name, d => d.SourcePath);
            }
            planContext.VmMap[item.Name] = vm;
        }
    }

    private readonly SemaphoreSlim _saveGate = new(1, 1);

    private async Task UpdateAsync(AsrJob job, Action change)
    {
        // Parallel machines finish concurrently: their saves are serialized, each writing the latest state.
        await _saveGate.WaitAsync().ConfigureAwait(false);
        try
        {
            lock (job) change();
            await _vault.Jobs.SaveAsync(JobRunner.Snapshot(job), CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            _saveGate.Release();
        }
    }
}
