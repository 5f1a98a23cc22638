using System.Management.Automation;
using AsrModule.Infrastructure;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Vault;

namespace AsrModule.Commands;

/// <summary>
/// Fails back to the original site: runs -StopSource (stop the recovered machine), a final reverse
/// sync, then the original disks are the machine again and protection to the vault resumes.
/// </summary>
[Cmdlet(VerbsLifecycle.Invoke, "AsrFailback", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = ByObject)]
[OutputType(typeof(AsrJob))]
public sealed class InvokeAsrFailbackCommand : ItemJobCmdlet
{
    /// <summary>Hook that stops the recovered machine before the final sync. Receives the item.</summary>
    [Parameter]
    public ScriptBlock? StopSource { get; set; }

    /// <summary>The target the machine was recovered into; needed for a target outside this machine (Azure) that was not created in this session.</summary>
    [Parameter]
    [RecoveryTargetTransformation]
    public IRecoveryTarget? Target { get; set; }


    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item)
    {
        if (item.Failover is not null) FailoverService.TargetOf(item, Target); // refuse before any job exists
        new FailoverService(vault).ValidateReverseTargets(item); // the disks it would write: refused before any job exists
        RunLockedOperation(vault, item, ItemOperation.Failback, "Failback", $"Fail back to {string.Join(", ", (IEnumerable<string>?)item.Reverse?.TargetDisks.Values ?? [])}",
            ctx => new FailoverService(vault).FailbackAsync(item, Target, ctx), AsJob,
            beforeJob: () => InvokeHook(StopSource, item, "StopSource"));
    }
}
