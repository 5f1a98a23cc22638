using System.Management.Automation;
using AsrModule.Engine.Jobs;

namespace AsrModule.Infrastructure;

/// <summary>
/// An AsrModule job as a PowerShell job (Job2), so Get-Job, Wait-Job, Receive-Job and Stop-Job work on
/// anything started with -AsJob, as ThreadJob does. Its name is the AsrJob id; Receive-Job returns the
/// finished AsrJob (and its error, if it failed).
/// </summary>
public sealed class AsrPowerShellJob : Job2
{
    private readonly RunningJob _running;

    public AsrPowerShellJob(RunningJob running)
        : base($"{running.Job.Operation} {running.Job.TargetName}", running.Job.Id.ToString())
    {
        _running = running;
        PSJobTypeName = "AsrJob";
        SetJobState(JobState.Running);
        running.Completion.ContinueWith(_ => Finish(), TaskScheduler.Default);
    }

    public Guid AsrJobId => _running.Job.Id;

    private void Finish()
    {
        var job = JobRunner.Snapshot(_running.Job);
        Output.Add(PSObject.AsPSObject(job));
        if (job.State is AsrJobState.Failed or AsrJobState.Interrupted)
            Error.Add(ErrorMapping.FromJob(job));
        SetJobState(job.State switch
        {
            AsrJobState.Succeeded => JobState.Completed,
            AsrJobState.Cancelled => JobState.Stopped,
            AsrJobState.Suspended => JobState.Suspended,
            _ => JobState.Failed,
        });
    }

    public override bool HasMoreData => Output.Count > 0 || Error.Count > 0;
    public override string Location => Environment.MachineName;
    public override string StatusMessage => _running.Job.StatusMessage ?? "";

    public override void StopJob()
    {
        if (!_running.Completion.IsCompleted)
        {
            _running.Cancel();
            _running.Completion.Wait();
        }
        // A run already suspended (or ended) does not change any more; PowerShell waits for a stop
        // state, so this wrapper stops. The plan run itself stays resumable with Resume-AsrJob.
        if (JobStateInfo.State == JobState.Suspended) SetJobState(JobState.Stopped);
    }

    public override void StopJob(bool force, string reason) => StopJob();
    public override void StopJobAsync() => Task.Run(() => { StopJob(); OnStopJobCompleted(new System.ComponentModel.AsyncCompletedEventArgs(null, false, null)); });
    public override void StopJobAsync(bool force, string reason) => StopJobAsync();

    // Starting happens when the job is created; suspend/resume of plan runs is Resume-AsrJob's work.
    public override void StartJob() => throw new NotSupportedException("AsrModule jobs start when they are created.");
    public override void StartJobAsync() => StartJob();
    public override void SuspendJob() => throw new NotSupportedException("Recovery plans suspend at their AsrPause steps; use Resume-AsrJob to continue.");
    public override void SuspendJobAsync() => SuspendJob();
    public override void SuspendJob(bool force, string reason) => SuspendJob();
    public override void SuspendJobAsync(bool force, string reason) => SuspendJob();
    public override void ResumeJob() => throw new NotSupportedException("Use Resume-AsrJob to continue a suspended recovery plan run.");
    public override void ResumeJobAsync() => ResumeJob();
    public override void UnblockJob() => throw new NotSupportedException();
    public override void UnblockJobAsync() => UnblockJob();
}
