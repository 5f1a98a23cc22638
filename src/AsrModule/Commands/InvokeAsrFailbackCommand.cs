using System.Management.Automation;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Vault;

namespace AsrModule.Commands;

/// <summary>
/// Fails back to the original site: runs -StopSource (stop the recovered machine), a final reverse
/// sync, then the original disks are the machine again and protection to the vault resumes.
/// </summary>
[Cmdlet(VerbsLifecycle.Invoke, "AsrFailback", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = ByObject)]
[OutputType(typeof(AsrJob))]
public sealed class InvokeAsrFailbackCommand : ItemTargetCmdlet
{
    /// <summary>Hook that stops the recovered machine before the final sync. Receives the item.</summary>
    [Parameter]
    public ScriptBlock? StopSource { get; set; }

    [Parameter]
    public SwitchParameter AsJob { get; set; }

    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item)
    {
        ItemStateMachine.EnsureAllowed(item, ItemOperation.Failback);
        if (!ShouldProcess(item.Name, $"Fail back to {string.Join(", ", item.Reverse!.TargetDisks.Values)}")) return;
        var lease = new ReplicationService(vault).AcquireLease(item);
        try
        {
            InvokeHook(StopSource, item, "StopSource");
        }
        catch
        {
            lease.Dispose();
            throw;
        }
        RunItemJob(vault, item, "Failback", lease, ctx => new FailoverService(vault).FailbackAsync(item, ctx), AsJob);
    }
}
