using System.Collections.Concurrent;
using System.Diagnostics;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Jobs;

/// <summary>
/// Runs job bodies on the thread pool and keeps their records in the vault: written when the job
/// starts, at most once a second while it reports progress, and when it ends. Records carry the
/// owner process so another session can tell a running job from one whose process died. A job's
/// percentage never goes down (<see cref="MonotonicProgress"/>), and reporting progress never waits
/// for storage: a loop of the job's own saves it.
/// </summary>
public static class JobRunner
{
    private static readonly ConcurrentDictionary<Guid, RunningJob> Running = new();
    private static readonly TimeSpan PersistInterval = TimeSpan.FromSeconds(1);
    private static readonly DateTimeOffset ProcessStart = new(Process.GetCurrentProcess().StartTime.ToUniversalTime());

    public static bool TryGetRunning(Guid jobId, out RunningJob job) => Running.TryGetValue(jobId, out job!);

    /// <summary>Makes this process the owner of an existing record (a plan run resumed or restarted here).</summary>
    public static void TakeOver(AsrJob job)
    {
        job.State = AsrJobState.InProgress;
        job.EndTimeUtc = null;
        job.OwnerProcessId = Environment.ProcessId;
        job.OwnerProcessStartUtc = ProcessStart;
        job.OwnerHost = Environment.MachineName;
    }

    public static AsrJob NewRecord(string operation, string targetName, string? targetId) => new()
    {
        Id = Guid.NewGuid(),
        Operation = operation,
        TargetName = targetName,
        TargetId = targetId,
        State = AsrJobState.InProgress,
        StartTimeUtc = DateTimeOffset.UtcNow,
        OwnerProcessId = Environment.ProcessId,
        OwnerProcessStartUtc = ProcessStart,
        OwnerHost = Environment.MachineName,
        StatusMessage = "Starting",
    };

    /// <summary>Starts <paramref name="body"/> as a job. The record is persisted before this returns.</summary>
    public static RunningJob Start(AsrVault vault, AsrJob job, Func<JobContext, Task<AsrJobResult?>> body, ILogger? logger = null)
    {
        logger ??= vault.Logger;
        var cts = new CancellationTokenSource();
        var running = new RunningJob(job, cts);
        job.VaultLocation = vault.Location;
        vault.Jobs.SaveAsync(job, CancellationToken.None).GetAwaiter().GetResult();
        Running[job.Id] = running;

        // What the job shows (Write-Progress, Get-AsrJob, the item's ActiveJobPercent) never goes back; a
        // resumed plan run continues from its record's percentage.
        var progress = new MonotonicProgress(new Progress(p =>
        {
            running.SetProgress(p);
            lock (job)
            {
                job.PercentComplete = p.PercentComplete;
                job.StatusMessage = p.StatusMessage;
            }
        }), job.PercentComplete);
        var context = new JobContext(job, cts.Token, progress, logger);
        var stopSaving = new CancellationTokenSource();
        var saver = SaveProgressAsync(vault, running, logger, stopSaving.Token);
        running.Completion = Task.Run(async () =>
        {
            try
            {
                var result = await body(context).ConfigureAwait(false);
                Finish(job, AsrJobState.Succeeded, result, null);
            }
            catch (Plans.JobSuspendedException suspended)
            {
                Finish(job, AsrJobState.Suspended, null, null);
                lock (job) job.StatusMessage = suspended.Message;
            }
            catch (OperationCanceledException) when (cts.IsCancellationRequested)
            {
                Finish(job, AsrJobState.Cancelled, null, new AsrJobError
                {
                    ErrorId = AsrErrorIds.OperationCancelled, Kind = nameof(AsrErrorKind.OperationStopped),
                    Message = $"{job.Operation} of '{job.TargetName}' was cancelled; the vault is unchanged by it.", Target = job.TargetName,
                });
            }
            catch (AsrException ex)
            {
                Finish(job, AsrJobState.Failed, null, new AsrJobError { ErrorId = ex.ErrorId, Kind = ex.Kind.ToString(), Message = ex.Message, Target = ex.Target?.ToString() });
            }
            catch (Exception ex)
            {
                logger.LogError(ex, "Job {JobId} failed", job.Id);
                Finish(job, AsrJobState.Failed, null, new AsrJobError { ErrorId = "JobFailed", Kind = nameof(AsrErrorKind.InvalidOperation), Message = ex.Message, Target = job.TargetName });
            }
            finally
            {
                // The last progress save (if one is under way) lands before the end is written, never after it.
                stopSaving.Cancel();
                await saver.ConfigureAwait(false);
                stopSaving.Dispose();
                try { await vault.Jobs.SaveAsync(Snapshot(job), CancellationToken.None).ConfigureAwait(false); }
                catch (Exception ex) { logger.LogError(ex, "Could not persist the end of job {JobId}", job.Id); }
                Running.TryRemove(KeyValuePair.Create(job.Id, running));
                cts.Dispose();
            }
        });
        return running;
    }

    /// <summary>Saves the job's record once a second while its progress changes, until <paramref name="stop"/>.</summary>
    private static async Task SaveProgressAsync(AsrVault vault, RunningJob running, ILogger logger, CancellationToken stop)
    {
        int saved = running.ProgressVersion;
        while (!stop.IsCancellationRequested)
        {
            try { await Task.Delay(PersistInterval, stop).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
            int version = running.ProgressVersion;
            if (version == saved) continue;
            saved = version;
            try { await vault.Jobs.SaveAsync(Snapshot(running.Job), CancellationToken.None).ConfigureAwait(false); }
            catch (Exception ex) { logger.LogWarning(ex, "Could not persist progress of job {JobId}", running.Job.Id); }
        }
    }

    private static void Finish(AsrJob job, AsrJobState state, AsrJobResult? result, AsrJobError? error)
    {
        lock (job)
        {
            job.State = state;
            job.Result = result;
            job.EndTimeUtc = DateTimeOffset.UtcNow;
            if (state == AsrJobState.Succeeded) job.PercentComplete = 100;
            // A successful job keeps its last progress line ("Recovery point 3 of 'web01' published"): more useful than "Completed".
            job.StatusMessage = error?.Message ?? (state == AsrJobState.Succeeded ? (string.IsNullOrEmpty(job.StatusMessage) || job.StatusMessage == "Starting" ? "Completed" : job.StatusMessage) : state.ToString());
            if (error is not null) job.Errors.Add(error);
        }
    }

    public static AsrJob Snapshot(AsrJob job)
    {
        lock (job) return job.Clone();
    }

    /// <summary>True when the job's recorded owner process is gone (so an InProgress record is stale).</summary>
    public static bool OwnerIsGone(AsrJob job)
    {
        if (job.IsFinished || job.OwnerHost != Environment.MachineName) return false;
        if (job.OwnerProcessId == Environment.ProcessId) return !Running.ContainsKey(job.Id);
        try
        {
            using var p = Process.GetProcessById(job.OwnerProcessId);
            return job.OwnerProcessStartUtc is { } start && Math.Abs((p.StartTime.ToUniversalTime() - start.UtcDateTime).TotalSeconds) > 2;
        }
        catch (ArgumentException)
        {
            return true;
        }
    }

    private sealed class Progress(Action<JobProgress> onReport) : IProgress<JobProgress>
    {
        public void Report(JobProgress value) => onReport(value);
    }
}
