using System.Management.Automation;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Plans;
using AsrModule.Infrastructure;
using AsrModule.Plans;

namespace AsrModule.Commands;

/// <summary>
/// Runs a recovery plan (a .ps1 that calls AsrRecoveryPlan) as one job: groups in order, machines of
/// a group in parallel, steps before/after them, pauses that suspend the job until Resume-AsrJob.
/// </summary>
[Cmdlet(VerbsLifecycle.Start, "AsrRecoveryPlan", SupportsShouldProcess = true)]
[OutputType(typeof(AsrJob))]
public sealed class StartAsrRecoveryPlanCommand : AsrCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    public string Path { get; set; } = "";

    [Parameter(Mandatory = true)]
    public PlanFailoverType FailoverType { get; set; }

    /// <summary>Where drills and failovers recover the machines (Test, Planned, Unplanned): New-AsrLocalTarget, New-AsrAzureTarget or a directory path; for the later steps of an Azure run (cleanup, commit, reprotect, failback) the same Azure target.</summary>
    [Parameter]
    [RecoveryTargetTransformation]
    public IRecoveryTarget? Target { get; set; }

    /// <summary>A Test run that boots every drilled machine under QEMU with the plan's AsrBootCheck settings and runs their checks.</summary>
    [Parameter]
    public SwitchParameter Boot { get; set; }

    [Parameter]
    public SwitchParameter AsJob { get; set; }

    protected override void ProcessRecord()
    {
        var vault = ResolveVault();
        string path = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
        ForItem(path, () =>
        {
            if (Target is null && FailoverType is PlanFailoverType.Test or PlanFailoverType.Planned or PlanFailoverType.Unplanned)
                throw new AsrException(AsrErrorIds.RecoveryPlanInvalid, AsrErrorKind.InvalidArgument, $"A {FailoverType} run needs -Target (New-AsrLocalTarget or New-AsrAzureTarget).", path);
            var session = PlanSession.Load(path, ModuleManifest());
            try
            {
                var plan = session.Definition.Plan;
                Await(ct => RecoveryPlanValidator.ValidateAsync(vault, plan, FailoverType, path, ct, boot: Boot));
                // A boot needs drills served over NBD: a drill in Azure is booted there.
                if (Boot && Target is not null and not AsrLocalTarget)
                    throw new AsrException(AsrErrorIds.RecoveryPlanInvalid, AsrErrorKind.InvalidArgument,
                        $"-Boot boots drills served over NBD (New-AsrLocalTarget); a drill in {Target.Kind} is booted there. Run without -Boot.", path);
                // The target must take every machine of the run before anything runs (a directory under /proc, a drill
                // target without a test subnet, a machine's files already there are refused now, with no job recorded).
                if (Target is not null && FailoverType is PlanFailoverType.Test or PlanFailoverType.Planned or PlanFailoverType.Unplanned)
                {
                    var purpose = FailoverType == PlanFailoverType.Test ? RecoveryPurpose.TestFailover : RecoveryPurpose.Failover;
                    foreach (var name in plan.Groups.SelectMany(g => g.Items))
                    {
                        var item = Await(ct => vault.GetItemAsync(name, ct));
                        Await(ct => Target.ValidateAsync(vault, item, purpose, ct));
                    }
                }
                if (!ShouldProcess(plan.Name, $"Run a {FailoverType}{(Boot ? " (booting every drilled machine)" : "")} over {string.Join(", ", plan.Groups.SelectMany(g => g.Items))}"))
                {
                    session.Dispose();
                    return;
                }
                var job = JobRunner.NewRecord($"RecoveryPlan{FailoverType}", plan.Name, null);
                job.Tasks = RecoveryPlanValidator.Tasks(plan, FailoverType);
                job.Plan = new PlanRunRecord { PlanName = plan.Name, PlanPath = path, PlanSha256 = session.Sha256, FailoverType = FailoverType, Boot = Boot, TargetPath = (Target as AsrLocalTarget)?.Path,
                    TargetDiskFormat = Target is AsrLocalTarget { Format: not Engine.Replication.Sources.Images.DiskOutputFormat.Raw } local ? Engine.Replication.Sources.Images.DiskOutputFormats.Name(local.Format) : null, TargetKind = Target?.Kind, TargetLocation = Target?.Location };
                if (Target is not null) RecoveryTargets.Register(Target);
                CompleteJob(PlanJobs.Start(vault, job, session, Target, asJob: AsJob, Log), AsJob);
            }
            catch
            {
                session.Dispose();
                throw;
            }
        });
    }
}
