using System.Management.Automation;
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


    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item) =>
        RunLockedOperation(vault, item, ItemOperation.Failback, "Failback", $"Fail back to {string.Join(", ", (IEnumerable<string>?)item.Reverse?.TargetDisks.Values ?? [])}",
            ctx => new FailoverService(vault).FailbackAsync(item, ctx), AsJob,
            beforeJob: () => InvokeHook(StopSource, item, "StopSource"));
}
