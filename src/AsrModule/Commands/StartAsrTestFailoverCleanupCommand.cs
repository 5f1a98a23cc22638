using System.Management.Automation;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Vault;

namespace AsrModule.Commands;

/// <summary>Ends a drill: stops serving its disks, deletes everything it made and records a comment.</summary>
[Cmdlet(VerbsLifecycle.Start, "AsrTestFailoverCleanup", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = ByObject)]
[OutputType(typeof(AsrJob))]
public sealed class StartAsrTestFailoverCleanupCommand : ItemJobCmdlet
{
    /// <summary>What the drill showed; kept on the item (LastTestFailover) and in the job.</summary>
    [Parameter]
    public string? Comment { get; set; }


    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item)
    {
        var service = new TestFailoverService(vault);
        service.ValidateCleanup(item);
        if (!ShouldProcess(item.Name, $"Clean up the drill in '{item.TestFailover!.Directory}' (its disks and any writes to them are discarded)")) return;
        RunItemJob(vault, item, "TestFailoverCleanup", null, ctx => service.CleanupAsync(item, Comment, ctx), AsJob);
    }
}
