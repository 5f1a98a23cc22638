using System.Management.Automation;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Vault;

namespace AsrModule.Commands;

/// <summary>Commits a failover: the recovery point is fixed; next comes reprotect.</summary>
[Cmdlet(VerbsLifecycle.Complete, "AsrFailover", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = ByObject)]
[OutputType(typeof(AsrJob))]
public sealed class CompleteAsrFailoverCommand : ItemTargetCmdlet
{
    [Parameter]
    public SwitchParameter AsJob { get; set; }

    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item)
    {
        ItemStateMachine.EnsureAllowed(item, ItemOperation.CommitFailover);
        if (!ShouldProcess(item.Name, $"Commit the failover at point {item.Failover!.RecoveryPointSequence} (it can no longer be changed or cancelled)")) return;
        var lease = new ReplicationService(vault).AcquireLease(item);
        RunItemJob(vault, item, "CommitFailover", lease, ctx => new FailoverService(vault).CommitAsync(item, ctx), AsJob);
    }
}
