using System.Management.Automation;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Vault;

namespace AsrModule.Commands;

/// <summary>Runs one replication cycle (delta, or checksum resync when needed) and publishes a crash-consistent point.</summary>
[Cmdlet(VerbsLifecycle.Invoke, "AsrReplication", SupportsShouldProcess = true, DefaultParameterSetName = ByObject)]
[OutputType(typeof(AsrJob))]
public sealed class InvokeAsrReplicationCommand : ItemTargetCmdlet
{
    /// <summary>Compares checksums of every block with the replica instead of trusting the change tracker.</summary>
    [Parameter]
    public SwitchParameter Resync { get; set; }

    [Parameter]
    public SwitchParameter AsJob { get; set; }

    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item)
    {
        bool resync = Resync || item.State == ProtectedItemState.ResyncRequired;
        if (!ShouldProcess(item.Name, resync ? "Resync replication (checksum compare)" : "Run a replication cycle")) return;
        var service = new ReplicationService(vault);
        var lease = Await(ct => service.PrepareCycleAsync(item, resync, ct));
        var job = JobRunner.NewRecord(resync ? "ResyncReplication" : "ReplicationCycle", item.Name, item.Id);
        var running = StartJob(vault, job, async ctx =>
        {
            using (lease) return await service.RunCycleAsync(item, Resync, ctx).ConfigureAwait(false);
        }, AsJob);
        CompleteJob(running, AsJob);
    }
}
