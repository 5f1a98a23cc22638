using System.Management.Automation;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Vault;

namespace AsrModule.Commands;

/// <summary>Before commit: cancels a failover; the recovered disks are deleted and protection resumes from the original disks.</summary>
[Cmdlet(VerbsCommon.Undo, "AsrFailover", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = ByObject)]
[OutputType(typeof(AsrJob))]
public sealed class UndoAsrFailoverCommand : ItemJobCmdlet
{
    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item) =>
        RunLockedOperation(vault, item, ItemOperation.CancelFailover, "CancelFailover",
            $"Cancel the failover and delete the recovered disks in '{item.Failover?.TargetPath}'",
            ctx => new FailoverService(vault).CancelAsync(item, ctx), AsJob);
}
