using System.Management.Automation;
using AsrModule.Infrastructure;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Vault;

namespace AsrModule.Commands;

/// <summary>Runs one replication cycle (delta, or checksum resync when needed) and publishes a crash-consistent (or, with -AppConsistent, app-consistent) point.</summary>
[Cmdlet(VerbsLifecycle.Invoke, "AsrReplication", SupportsShouldProcess = true, DefaultParameterSetName = ByObject)]
[OutputType(typeof(AsrJob))]
public sealed class InvokeAsrReplicationCommand : ItemJobCmdlet
{
    /// <summary>Compares checksums of every block with the replica instead of trusting the change tracker.</summary>
    [Parameter]
    public SwitchParameter Resync { get; set; }

    /// <summary>Runs the item's freeze script around the capture: the point is app-consistent (or crash-consistent with a note when the freeze fails).</summary>
    [Parameter]
    public SwitchParameter AppConsistent { get; set; }

    /// <summary>The target the machine was recovered into; used by reverse cycles after reprotect; needed for a target outside this machine (Azure) that was not created in this session.</summary>
    [Parameter]
    [RecoveryTargetTransformation]
    public IRecoveryTarget? Target { get; set; }

    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item)
    {
        var service = new ReplicationService(vault);
        if (item.State == ProtectedItemState.Reprotected)
        {
            // After reprotect, a cycle replicates the recovered disks back to the original site.
            if (!ShouldProcess(item.Name, "Run a reverse replication cycle (recovered disks → original site)")) return;
            new FailoverService(vault).ValidateReverseTargets(item); // the disks it would write: refused before any job exists
            var reverseLease = service.AcquireLease(item);
            RunItemJob(vault, item, "ReverseReplicationCycle", reverseLease, ctx => new FailoverService(vault).ReverseCycleAsync(item, Target, ctx), AsJob);
            return;
        }
        bool resync = Resync || item.NeedsResync;
        ItemStateMachine.EnsureAllowed(item, resync ? ItemOperation.Resync : ItemOperation.Replicate);
        if (!ShouldProcess(item.Name, resync ? "Resync replication (checksum compare)" : "Run a replication cycle")) return;
        var lease = Await(ct => service.PrepareCycleAsync(item, resync, ct));
        if (AppConsistent && item.AppConsistencyScript is null)
            WriteWarning($"'{item.Name}' has no app-consistency script (Set-AsrProtectedItem -AppConsistencyScript): the point will be crash-consistent.");
        else if (AppConsistent && Engine.Replication.Consistency.FreezeScriptTrust.WhyNotAllowed(item) is { } notAllowed)
            WriteWarning(notAllowed + " The point will be crash-consistent.");
        RunItemJob(vault, item, resync ? "ResyncReplication" : "ReplicationCycle", lease,
            ctx => service.RunCycleAsync(item, Resync, ctx, new CycleOptions { AppConsistent = AppConsistent }), AsJob);
    }
}
