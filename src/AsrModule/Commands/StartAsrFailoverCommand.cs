using System.Management.Automation;
using AsrModule.Completion;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Vault;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>
/// Fails a machine over to the target. -Planned: runs -StopSource, does a final sync and uses that
/// point (no data lost). Unplanned (default): from -RecoveryPoint (default LatestProcessed).
/// </summary>
[Cmdlet(VerbsLifecycle.Start, "AsrFailover", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = ByObject)]
[OutputType(typeof(AsrJob))]
public sealed class StartAsrFailoverCommand : ItemJobCmdlet
{
    /// <summary>Where the machine is recovered: New-AsrLocalTarget (a directory), New-AsrAzureTarget (managed disks and a VM), or a directory path.</summary>
    [Parameter(Mandatory = true)]
    [RecoveryTargetTransformation]
    public IRecoveryTarget Target { get; set; } = null!;

    [Parameter]
    public SwitchParameter Planned { get; set; }

    [Parameter]
    [RecoveryPointChoiceTransformation]
    [ArgumentCompleter(typeof(RecoveryPointCompleter))]
    public RecoveryPointChoice? RecoveryPoint { get; set; }

    /// <summary>LatestProcessed, Latest and a time may choose an Inconsistent point (read live while its disks were written). Without it they skip such points.</summary>
    [Parameter]
    public SwitchParameter AllowInconsistent { get; set; }

    /// <summary>Source-side hook for a planned failover: stops or quiesces the source machine, and returns only once it has stopped. Receives the item.</summary>
    [Parameter]
    public ScriptBlock? StopSource { get; set; }

    /// <summary>For a planned failover without a hook: states that the source is already stopped.</summary>
    [Parameter]
    public SwitchParameter SourceStopped { get; set; }


    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item)
    {
        if (Planned && RecoveryPoint is not null)
            throw new AsrException(AsrErrorIds.InvalidStateTransition, AsrErrorKind.InvalidArgument,
                "A planned failover always uses the point its final sync takes; omit -RecoveryPoint, or drop -Planned for an unplanned failover.", item.Name);
        if (Planned && StopSource is null && !SourceStopped)
            throw new AsrException(AsrErrorIds.HookFailed, AsrErrorKind.InvalidArgument,
                "A planned failover must know the source is stopped: give -StopSource { ... } (a hook that returns once it has stopped) or -SourceStopped.", item.Name);
        ItemStateMachine.EnsureAllowed(item, ItemOperation.Failover);
        Await(ct => new FailoverService(vault).ValidateTargetAsync(item, Target, ct));
        var type = Planned ? FailoverType.Planned : FailoverType.Unplanned;
        var choice = (RecoveryPoint ?? RecoveryPointChoice.LatestProcessed) with { AllowInconsistent = AllowInconsistent };
        if (!Planned && choice.Kind != RecoveryPointKind.Latest) Await(ct => choice.ResolveAsync(vault, item, ct)); // fail before any job exists
        if (!ShouldProcess(item.Name, $"{type} failover to {Target.Describe(item.Name, RecoveryPurpose.Failover)}" + (Planned ? " (final sync)" : $" from {choice}"))) return;
        var replication = new ReplicationService(vault);
        // A sync needs the source readable; an unplanned failover from a stored point must work without it.
        IDisposable lease;
        try
        {
            lease = Planned || choice.Kind == RecoveryPointKind.Latest
                ? Await(ct => replication.PrepareCycleAsync(item, false, ct))
                : replication.AcquireLease(item);
        }
        catch (AsrException ex) when (ex.ErrorId is AsrErrorIds.DiskNotFound or AsrErrorIds.DiskUnreadable)
        {
            throw new AsrException(ex.ErrorId, ex.Kind,
                ex.Message + (Planned ? " A planned failover needs the source; if the site is gone, fail over unplanned with -RecoveryPoint LatestProcessed."
                                      : " Latest replicates first and needs the source; if the site is gone, use -RecoveryPoint LatestProcessed."), ex.Target, ex);
        }
        try
        {
            if (Planned) InvokeHook(StopSource, item, "StopSource");
        }
        catch
        {
            lease.Dispose();
            throw;
        }
        var service = new FailoverService(vault);
        RecoveryTargets.Register(Target);
        RunItemJob(vault, item, Planned ? "PlannedFailover" : "UnplannedFailover", lease, ctx => service.FailoverAsync(item, type, choice, Target, ctx), AsJob);
    }
}
