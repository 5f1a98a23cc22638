using AsrModule.Engine.Errors;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Plans;
using AsrModule.Engine.Vault;

namespace AsrModule.Plans;

/// <summary>
/// Continues a plan run in this process: after a pause (resume) or after a failure or a dead process
/// (restart). The plan file must be unchanged; one process wins the claim to continue a given task.
/// </summary>
internal static class PlanRunContinuation
{
    public static async Task<PlanSession> PrepareAsync(AsrVault vault, AsrJob job, string moduleManifest, bool restart, string? comment, CancellationToken ct)
    {
        var run = job.Plan ?? throw new AsrException(AsrErrorIds.JobNotResumable, AsrErrorKind.InvalidOperation,
            $"Job {job.Id} ({job.Operation}) is not a recovery plan run; only plan runs can be resumed or restarted.", job.Id);
        bool ok = restart ? job.State is AsrJobState.Interrupted or AsrJobState.Failed or AsrJobState.Cancelled : job.State == AsrJobState.Suspended;
        if (!ok)
            throw new AsrException(AsrErrorIds.InvalidStateTransition, AsrErrorKind.InvalidOperation,
                $"Job {job.Id} is {job.State}. {(restart ? "Restart-AsrJob continues Interrupted, Failed or Cancelled plan runs" : "Resume-AsrJob continues Suspended plan runs")}; allowed now: {string.Join(", ", job.AllowedActions.DefaultIfEmpty("nothing"))}.", job.Id);
        if (JobRunner.TryGetRunning(job.Id, out _))
            throw new AsrException(AsrErrorIds.ProtectedItemBusy, AsrErrorKind.ResourceBusy, $"Job {job.Id} is still finishing in this session; try again in a moment.", job.Id);
        if (!File.Exists(run.PlanPath) || PlanSession.HashFile(run.PlanPath) != run.PlanSha256)
            throw new AsrException(AsrErrorIds.JobNotResumable, AsrErrorKind.InvalidOperation,
                $"The plan file '{run.PlanPath}' is missing or changed since job {job.Id} started; a run continues only with the plan it started with. Start a new run.", job.Id);
        var session = PlanSession.Load(run.PlanPath, moduleManifest);
        try
        {
            await RecoveryPlanValidator.ValidateAsync(vault, session.Definition.Plan, run.FailoverType, run.PlanPath, ct, checkStates: false, boot: run.Boot).ConfigureAwait(false);
            // Exactly one process continues from a given task, even if several try at once.
            if (!await vault.Store.TryCreateAsync(PlanRunRecord.ClaimKey(job.Id, run.Attempt + 1), Array.Empty<byte>(), ct).ConfigureAwait(false))
                throw new AsrException(AsrErrorIds.ProtectedItemBusy, AsrErrorKind.ResourceBusy, $"Another session is already continuing (or stopping) job {job.Id}.", job.Id);
            run.Attempt++;
            var tasks = job.Tasks!;
            if (restart)
            {
                foreach (var t in tasks.Skip(run.NextTask).Where(t => t.State is PlanTaskState.Failed or PlanTaskState.InProgress))
                    t.State = PlanTaskState.Pending;
            }
            else
            {
                var pause = tasks[run.NextTask];
                pause.State = PlanTaskState.Succeeded;
                pause.EndTimeUtc = DateTimeOffset.UtcNow;
                pause.Output = comment;
                run.Comments.Add($"{DateTimeOffset.UtcNow:u} {Environment.UserName}@{Environment.MachineName}: {comment ?? "(resumed)"}");
                run.NextTask++;
                run.PauseMessage = null;
            }
            JobRunner.TakeOver(job);
            job.StatusMessage = restart ? $"Restarted at task {run.NextTask}" : "Resumed";
            return session;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }
}
