using System.Management.Automation;
using AsrModule.Engine.Items;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Vault;

namespace AsrModule.Commands;

/// <summary>Stops protecting a machine and deletes its recovery points from the vault.</summary>
[Cmdlet(VerbsLifecycle.Disable, "AsrReplication", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = ByObject)]
[OutputType(typeof(void))]
public sealed class DisableAsrReplicationCommand : ItemTargetCmdlet
{
    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item)
    {
        if (!ShouldProcess(item.Name, $"Disable replication and delete all {item.LastPointSequence} recovery point(s)")) return;
        Await(ct => new ReplicationService(vault).DisableAsync(item, ct));
    }
}
