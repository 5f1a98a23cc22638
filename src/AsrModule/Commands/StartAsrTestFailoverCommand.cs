using System.Management.Automation;
using AsrModule.Completion;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Vault;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Starts a drill: the point's disks served over NBD under copy-on-write overlays; production replication continues.</summary>
[Cmdlet(VerbsLifecycle.Start, "AsrTestFailover", SupportsShouldProcess = true, DefaultParameterSetName = ByObject)]
[OutputType(typeof(AsrJob))]
public sealed class StartAsrTestFailoverCommand : ItemJobCmdlet
{
    [Parameter]
    [RecoveryPointChoiceTransformation]
    [ArgumentCompleter(typeof(RecoveryPointCompleter))]
    public RecoveryPointChoice RecoveryPoint { get; set; } = RecoveryPointChoice.LatestProcessed;

    /// <summary>LatestProcessed, Latest and a time may choose an Inconsistent point (read live while its disks were written). Without it they skip such points.</summary>
    [Parameter]
    public SwitchParameter AllowInconsistent { get; set; }

    /// <summary>Where the drill runs: New-AsrLocalTarget (disks served over NBD), New-AsrAzureTarget (managed disks and a VM in its test subnet), or a directory path.</summary>
    [Parameter(Mandatory = true)]
    [RecoveryTargetTransformation]
    public IRecoveryTarget Target { get; set; } = null!;


    protected override void ProcessItem(AsrVault vault, AsrProtectedItem item)
    {
        RecoveryPoint = RecoveryPoint with { AllowInconsistent = AllowInconsistent };
        var service = new TestFailoverService(vault);
        service.Validate(item);
        if (RecoveryPoint.Kind != RecoveryPointKind.Latest) Await(ct => RecoveryPoint.ResolveAsync(vault, item, ct)); // fail before any job exists
        Await(ct => Target.ValidateAsync(vault, item, RecoveryPurpose.TestFailover, ct));
        if (!ShouldProcess(item.Name, $"Start a drill from {RecoveryPoint} in {Target.Describe(item.Name, RecoveryPurpose.TestFailover)}")) return;
        RecoveryTargets.Register(Target);
        var replication = new ReplicationService(vault);
        // Latest syncs first, under the item's lock; the drill itself does not hold it (replication continues).
        var syncLease = RecoveryPoint.Kind == RecoveryPointKind.Latest ? Await(ct => replication.PrepareCycleAsync(item, false, ct)) : null;
        var choice = RecoveryPoint;
        // The job owns the sync lease (released when the drill has started, or if the job cannot start).
        RunItemJob(vault, item, "TestFailover", syncLease, ctx => service.StartAsync(item, choice, Target,
            syncLease is null ? null : c => replication.RunCycleAsync(item, false, c), ctx), AsJob);
    }
}
