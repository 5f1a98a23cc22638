using System.Management.Automation;
using AsrModule.Completion;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Before commit: recovers the failed-over machine from another recovery point.</summary>
[Cmdlet(VerbsCommon.Switch, "AsrRecoveryPoint", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = ByObject)]
[OutputType(typeof(AsrJob))]
public sealed class SwitchAsrRecoveryPointCommand : ItemJobCmdlet
{
    [Parameter(Mandatory = true)]
    [RecoveryPointChoiceTransformation]
    [ArgumentCompleter(typeof(RecoveryPointCompleter))]
    public RecoveryPointChoice RecoveryPoint { get; set; } = null!;

    /// <summary>LatestProcessed, Latest and a time may choose an Inconsistent point (read live while its disks were written). Without it they skip such points.</summary>
    [Parameter]
    public SwitchParameter AllowInconsistent { get; set; }

    /// <summary>The target the machine was recovered into; needed for a target outside this machine (Azure) that was not created in this session.</summary>
    [Parameter]
    [RecoveryTargetTransformation]
    public IRecoveryTarget? Target { get; set; }


    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item)
    {
        RecoveryPoint = RecoveryPoint with { AllowInconsistent = AllowInconsistent };
        ItemStateMachine.EnsureAllowed(item, ItemOperation.ChangeRecoveryPoint);
        if (RecoveryPoint.Kind != RecoveryPointKind.Latest) Await(ct => RecoveryPoint.ResolveAsync(vault, item, ct)); // fail before any job exists
        FailoverService.TargetOf(item, Target);
        RunLockedOperation(vault, item, ItemOperation.ChangeRecoveryPoint, "ChangeRecoveryPoint",
            $"Rewrite the recovered disks from {RecoveryPoint} (changes made to them are lost)",
            ctx => new FailoverService(vault).ChangeRecoveryPointAsync(item, RecoveryPoint, Target, ctx), AsJob);
    }
}
