using System.Management.Automation;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Vault;

namespace AsrModule.Commands;

/// <summary>Commits a failover: the recovery point is fixed; next comes reprotect.</summary>
[Cmdlet(VerbsLifecycle.Complete, "AsrFailover", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = ByObject)]
[OutputType(typeof(AsrJob))]
public sealed class CompleteAsrFailoverCommand : ItemJobCmdlet
{
    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item) =>
        RunLockedOperation(vault, item, ItemOperation.CommitFailover, "CommitFailover",
            $"Commit the failover at point {item.Failover?.RecoveryPointSequence} (it can no longer be changed or cancelled)",
            ctx => new FailoverService(vault).CommitAsync(item, ctx), AsJob);
}
