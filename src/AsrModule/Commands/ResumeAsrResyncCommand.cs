using System.Management.Automation;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Vault;

namespace AsrModule.Commands;

/// <summary>
/// Checksum resync: compares every block of the source with what the vault holds and sends only
/// the differing ones, publishing a new point. The job reports blocks compared, blocks and bytes sent;
/// the item shows the percentage while it runs.
/// </summary>
[Cmdlet(VerbsLifecycle.Resume, "AsrResync", SupportsShouldProcess = true, DefaultParameterSetName = ByObject)]
[OutputType(typeof(AsrJob))]
public sealed class ResumeAsrResyncCommand : ItemJobCmdlet
{
    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item)
    {
        var service = new ReplicationService(vault);
        ItemStateMachine.EnsureAllowed(item, ItemOperation.Resync);
        if (!ShouldProcess(item.Name, "Resync (compare checksums of every block with the vault)")) return;
        var lease = Await(ct => service.PrepareCycleAsync(item, true, ct));
        RunItemJob(vault, item, "Resync", lease, ctx => service.RunCycleAsync(item, true, ctx), AsJob);
    }
}
