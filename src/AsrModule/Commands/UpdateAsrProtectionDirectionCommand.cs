using System.Management.Automation;
using AsrModule.Infrastructure;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Vault;

namespace AsrModule.Commands;

/// <summary>
/// Reprotect: replicates the recovered disks back to the original disks (or to -AlternateDisk, new
/// disks that get a full copy), sending only the blocks whose checksums differ.
/// </summary>
[Cmdlet(VerbsData.Update, "AsrProtectionDirection", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = ByObject)]
[OutputType(typeof(AsrJob))]
public sealed class UpdateAsrProtectionDirectionCommand : ItemJobCmdlet
{
    /// <summary>Disks to fail back to instead of the original ones, one per disk in the item's order.</summary>
    [Parameter]
    public string[]? AlternateDisk { get; set; }

    /// <summary>The target the machine was recovered into; needed for a target outside this machine (Azure) that was not created in this session.</summary>
    [Parameter]
    [RecoveryTargetTransformation]
    public IRecoveryTarget? Target { get; set; }


    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item)
    {
        var alternate = AlternateDisk?.Select(d => SessionState.Path.GetUnresolvedProviderPathFromPSPath(d)).ToList();
        new FailoverService(vault).ValidateReprotect(item, alternate); // refuse before any job exists
        FailoverService.TargetOf(item, Target);
        string where = alternate is { Count: > 0 } ? string.Join(", ", alternate) : string.Join(", ", item.Disks.Select(d => d.SourcePath));
        RunLockedOperation(vault, item, ItemOperation.Reprotect, "Reprotect", $"Reprotect: write the recovered disks' differing blocks to {where}",
            ctx => new FailoverService(vault).ReprotectAsync(item, alternate, Target, ctx), AsJob);
    }
}
