using System.Management.Automation;
using AsrModule.Infrastructure;
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

    /// <summary>The target the machine was recovered into; needed for a target outside this machine (Azure) that was not created in this session.</summary>
    [Parameter]
    [RecoveryTargetTransformation]
    public IRecoveryTarget? Target { get; set; }


    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item)
    {
        var service = new TestFailoverService(vault);
        service.ValidateCleanup(item);
        var drill = item.TestFailover!;
        if (drill.Machine is { } machine) RecoveryTargets.Resolve(machine, Target, item.Name); // refuse before any job exists
        string where = drill.Machine is { } m ? $"{m.MachineId} and its disks in {m.TargetKind}" : $"'{drill.Directory}'";
        if (!ShouldProcess(item.Name, $"Clean up the drill in {where} (its disks and any writes to them are discarded)")) return;
        RunItemJob(vault, item, "TestFailoverCleanup", null, ctx => service.CleanupAsync(item, Comment, Target, ctx), AsJob);
    }
}
