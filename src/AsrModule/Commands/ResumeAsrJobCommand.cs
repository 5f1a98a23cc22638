using System.Management.Automation;
using AsrModule.Completion;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Failover;
using AsrModule.Infrastructure;
using AsrModule.Plans;

namespace AsrModule.Commands;

/// <summary>Resumes a recovery plan run suspended at a pause, in this process (any process can: the state is in the vault).</summary>
[Cmdlet(VerbsLifecycle.Resume, "AsrJob", SupportsShouldProcess = true, DefaultParameterSetName = "ByObject")]
[OutputType(typeof(AsrJob))]
public sealed class ResumeAsrJobCommand : PlanJobCmdlet
{
    /// <summary>What the person who resumes did or checked; kept in the job.</summary>
    [Parameter]
    public string? Comment { get; set; }

    protected override bool Restart => false;
    protected override string? ResumeComment => Comment;
}

/// <summary>Continues a recovery plan run that failed, was cancelled or whose process died, from its first unfinished task.</summary>
[Cmdlet(VerbsLifecycle.Restart, "AsrJob", SupportsShouldProcess = true, DefaultParameterSetName = "ByObject")]
[OutputType(typeof(AsrJob))]
public sealed class RestartAsrJobCommand : PlanJobCmdlet
{
    protected override bool Restart => true;
    protected override string? ResumeComment => null;
}

/// <summary>Shared by Resume-AsrJob and Restart-AsrJob.</summary>
public abstract class PlanJobCmdlet : AsrCmdlet
{
    [Parameter(Mandatory = true, ParameterSetName = "ByObject", ValueFromPipeline = true)]
    public AsrJob InputObject { get; set; } = null!;

    [Parameter(Mandatory = true, ParameterSetName = "ById", Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(JobIdCompleter))]
    public Guid Id { get; set; }

    [Parameter]
    public SwitchParameter AsJob { get; set; }

    /// <summary>The run's target when it is outside this machine (Azure) and was not created in this session.</summary>
    [Parameter]
    [RecoveryTargetTransformation]
    public IRecoveryTarget? Target { get; set; }

    protected abstract bool Restart { get; }
    protected abstract string? ResumeComment { get; }

    protected override void ProcessRecord()
    {
        var id = ParameterSetName == "ByObject" ? InputObject.Id : Id;
        var vault = ResolveVault(ParameterSetName == "ByObject" ? InputObject.VaultLocation : null);
        ForItem(id, () =>
        {
            var job = Await(ct => vault.Jobs.GetAsync(id, ct));
            if (!ShouldProcess($"{job.Operation} {job.TargetName} ({id})", Restart ? "Restart the plan run at its first unfinished task" : "Resume the plan run after its pause")) return;
            string manifest = System.IO.Path.Combine(MyInvocation.MyCommand.Module?.ModuleBase ?? System.IO.Path.GetDirectoryName(typeof(PlanSession).Assembly.Location)!, "AsrModule.psd1");
            var session = Await(ct => PlanRunContinuation.PrepareAsync(vault, job, manifest, Restart, ResumeComment, ct));
            if (Target is not null) RecoveryTargets.Register(Target);
            CompleteJob(PlanJobs.Start(vault, job, session, Target, AsJob, Log), AsJob);
        });
    }
}
