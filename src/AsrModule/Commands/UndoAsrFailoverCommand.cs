using System.Management.Automation;
using AsrModule.Infrastructure;
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
    /// <summary>The target the machine was recovered into; needed for a target outside this machine (Azure) that was not created in this session.</summary>
    [Parameter]
    [RecoveryTargetTransformation]
    public IRecoveryTarget? Target { get; set; }

    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item)
    {
        if (item.Failover is not null) FailoverService.TargetOf(item, Target); // refuse before any job exists
        RunLockedOperation(vault, item, ItemOperation.CancelFailover, "CancelFailover",
            $"Cancel the failover and delete the recovered machine '{item.Failover?.TargetPath}'",
            ctx => new FailoverService(vault).CancelAsync(item, Target, ctx), AsJob);
    }
}
