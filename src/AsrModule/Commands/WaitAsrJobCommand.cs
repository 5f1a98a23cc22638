using System.Management.Automation;
using AsrModule.Completion;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Jobs;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>
/// Waits for jobs to end and writes them; a job that failed also writes its error. Jobs of this
/// process show progress; jobs of other processes are followed through their vault record.
/// Ctrl+C stops waiting, not the job (use Stop-AsrJob for that).
/// </summary>
[Cmdlet(VerbsLifecycle.Wait, "AsrJob", DefaultParameterSetName = "ByObject")]
[OutputType(typeof(AsrJob))]
public sealed class WaitAsrJobCommand : AsrCmdlet
{
    [Parameter(Mandatory = true, ParameterSetName = "ByObject", ValueFromPipeline = true)]
    public AsrJob[] InputObject { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = "ById", Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(JobIdCompleter))]
    public Guid[] Id { get; set; } = [];

    /// <summary>Seconds to wait before giving up (the job keeps running). Default: no limit.</summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int TimeoutSeconds { get; set; }

    private readonly List<(Guid Id, string? Location)> _jobs = new();

    protected override void ProcessRecord()
    {
        if (ParameterSetName == "ByObject")
            foreach (var j in InputObject) _jobs.Add((j.Id, j.VaultLocation));
        else
            foreach (var id in Id) _jobs.Add((id, null));
    }

    protected override void EndProcessing()
    {
        DateTime? deadline = TimeoutSeconds > 0 ? DateTime.UtcNow.AddSeconds(TimeoutSeconds) : null;
        foreach (var (id, location) in _jobs)
        {
            if (JobRunner.TryGetRunning(id, out var running) && !WaitForLocalJob(running, deadline))
            {
                if (StopToken.IsCancellationRequested) return;
                WriteTimeout(running.Job);
                continue;
            }
            var vault = ResolveVault(location);
            AsrJob job;
            try
            {
                job = Await(ct => vault.Jobs.GetAsync(id, ct));
                while (!job.IsFinished && job.State != AsrJobState.Suspended)
                {
                    if (deadline is { } d && DateTime.UtcNow >= d) break;
                    Await(ct => Task.Delay(500, ct));
                    job = Await(ct => vault.Jobs.GetAsync(id, ct));
                }
            }
            catch (AsrException ex)
            {
                WriteError(ErrorMapping.ToErrorRecord(ex, id));
                continue;
            }
            if (job.IsFinished || job.State == AsrJobState.Suspended) WriteJobOutcome(job);
            else WriteTimeout(job);
        }
    }

    private void WriteTimeout(AsrJob job)
    {
        WriteObject(JobRunner.Snapshot(job));
        WriteError(new ErrorRecord(new TimeoutException($"Job {job.Id} ({job.Operation} of '{job.TargetName}') is still running after {TimeoutSeconds} s."),
            "JobWaitTimeout", ErrorCategory.OperationTimeout, job));
    }
}
