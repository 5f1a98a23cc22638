using System.Management.Automation;
using AsrModule.Completion;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Jobs;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Cancels a running job; the vault is left as it was before the job (no partial point is published).</summary>
[Cmdlet(VerbsLifecycle.Stop, "AsrJob", SupportsShouldProcess = true, DefaultParameterSetName = "ByObject")]
[OutputType(typeof(AsrJob))]
public sealed class StopAsrJobCommand : AsrCmdlet
{
    [Parameter(Mandatory = true, ParameterSetName = "ByObject", ValueFromPipeline = true)]
    public AsrJob[] InputObject { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = "ById", Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(JobIdCompleter))]
    public Guid[] Id { get; set; } = [];

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var ids = ParameterSetName == "ByObject" ? InputObject.Select(j => j.Id) : Id;
        foreach (var id in ids)
        {
            if (!JobRunner.TryGetRunning(id, out var running))
            {
                ForItem(id, () =>
                {
                    var vault = ResolveVault(InputObject.FirstOrDefault(j => j.Id == id)?.VaultLocation);
                    var job = Await(ct => vault.Jobs.GetAsync(id, ct));
                    if (job.State == AsrJobState.Suspended)
                    {
                        // A suspended plan run has no process: stopping it is a change of its record.
                        if (!ShouldProcess($"{job.Operation} {job.TargetName} ({id})", "Stop the suspended plan run (Resume-AsrJob no longer continues it)")) return;
                        // The same claim a resume takes: a stop and a resume of one attempt cannot both win.
                        if (!Await(ct => vault.Store.TryCreateAsync(Engine.Plans.PlanRunRecord.ClaimKey(id, job.Plan!.Attempt + 1), Array.Empty<byte>(), ct)))
                            throw new AsrException(AsrErrorIds.ProtectedItemBusy, AsrErrorKind.ResourceBusy, $"Another session is continuing job {id}; stop it there.", id);
                        job.Plan!.Attempt++;
                        job.State = AsrJobState.Cancelled;
                        job.EndTimeUtc = DateTimeOffset.UtcNow;
                        job.StatusMessage = $"Stopped while suspended{(job.Plan?.PauseMessage is { } p ? $" at '{p}'" : "")}.";
                        job.Errors.Add(new AsrJobError { ErrorId = AsrErrorIds.OperationCancelled, Kind = nameof(AsrErrorKind.OperationStopped), Message = job.StatusMessage, Target = job.TargetName });
                        Await(ct => vault.Jobs.SaveAsync(job, ct));
                        if (PassThru) WriteObject(job);
                        return;
                    }
                    if (job.IsFinished)
                        throw new AsrException(AsrErrorIds.InvalidStateTransition, AsrErrorKind.InvalidOperation,
                            $"Job {id} has already ended ({job.State}); only running jobs can be stopped.", id);
                    throw new AsrException(AsrErrorIds.JobNotRunningHere, AsrErrorKind.InvalidOperation,
                        $"Job {id} runs in process {job.OwnerProcessId} on {job.OwnerHost}; stop it from that session.", id);
                });
                continue;
            }
            if (!ShouldProcess($"{running.Job.Operation} {running.Job.TargetName} ({id})", "Stop job")) continue;
            running.Cancel();
            running.Completion.Wait();
            if (PassThru) WriteObject(JobRunner.Snapshot(running.Job));
        }
    }
}
