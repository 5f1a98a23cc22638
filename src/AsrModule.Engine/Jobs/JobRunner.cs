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

    /// <summary>Ids of the latest jobs that ended in this process (at most <see cref="EndedHereKept"/>), oldest first in the queue.</summary>
    private static readonly ConcurrentDictionary<Guid, byte> EndedHereIds = new();
    private static readonly ConcurrentQueue<Guid> EndedHereOrder = new();
    private const int EndedHereKept = 4096;

    /// <summary>
    /// Whether the job ran in this process and has ended (so no record of it anywhere shows it in progress): an item
    /// shown after its cycle (the agent re-reads it each time its record changes, Get-AsrProtectedItem after
    /// Invoke-AsrReplication) needs no read of that job's record (issue #15: ~5 job reads per agent cycle on a blob
    /// vault). Never true for a job whose record another process may take over (<see cref="TakeOver"/>).
    /// </summary>
    public static bool EndedHere(Guid jobId) => EndedHereIds.ContainsKey(jobId);

    /// <summary>A plan run's record (it carries its <see cref="AsrJob.Plan"/>) is resumed and restarted by other processes (<see cref="TakeOver"/>); no other job's is.</summary>
    private static bool MayBeTakenOver(AsrJob job) => job.Plan is not null;

    private static void RememberEnded(AsrJob job)
    {
        if (MayBeTakenOver(job) || !EndedHereIds.TryAdd(job.Id, 0)) return;
        EndedHereOrder.Enqueue(job.Id);
        while (EndedHereOrder.Count > EndedHereKept && EndedHereOrder.TryDequeue(out var oldest)) EndedHereIds.TryRemove(oldest, out _);
    }

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
        KickPendingEnds(vault.Location);
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
                Finish(job, AsrJobState.Failed, ex.PartialResult, new AsrJobError { ErrorId = ex.ErrorId, Kind = ex.Kind.ToString(), Message = ex.Message, Target = ex.Target?.ToString() });
            }
            catch (Exception ex)
            {
                logger.LogError(ex, "Job {JobId} failed", job.Id);
                Finish(job, AsrJobState.Failed, null, new AsrJobError { ErrorId = "JobFailed", Kind = nameof(AsrErrorKind.InvalidOperation), Message = ex.Message, Target = job.TargetName });
            }
            finally
            {
                stopSaving.Cancel();
                // The end is always recorded: written at once when the storage answers, else retried in the background
                // (and at the next use of the vault) until it does. Other processes would otherwise see an InProgress
                // record of a job that ended. The job completes once the first write of the end has succeeded or
                // failed, or after FinalWriteWait, so an outage is reported within the store's own retry budget.
                var end = new PendingEnd(vault.Records, Snapshot(job), logger);
                PendingEnds[job.Id] = end;
                RememberEnded(job);
                Running.TryRemove(KeyValuePair.Create(job.Id, running));
                _ = end.RunAsync(saver);
                await Task.WhenAny(end.FirstAttempt, Task.Delay(FinalWriteWait)).ConfigureAwait(false);
                stopSaving.Dispose();
                cts.Dispose();
            }
        });
        return running;
    }

    /// <summary>How long a job's completion waits for the write of its end before leaving it to <see cref="PendingEnd"/>.</summary>
    internal static TimeSpan FinalWriteWait { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>Backoff of the background retries of an end record: doubling from the first to the last.</summary>
    internal static TimeSpan EndRetryFirstDelay { get; set; } = TimeSpan.FromSeconds(0.5);
    internal static TimeSpan EndRetryMaxDelay { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Ends of jobs of this process not yet in the vault (the storage did not answer), by job id.</summary>
    private static readonly ConcurrentDictionary<Guid, PendingEnd> PendingEnds = new();

    /// <summary>The end of a job of this process whose record the vault does not hold yet: what every reader in this process sees.</summary>
    public static bool TryGetPendingEnd(Guid jobId, out AsrJob job)
    {
        if (PendingEnds.TryGetValue(jobId, out var end)) { job = end.Record.Clone(); return true; }
        job = null!;
        return false;
    }

    /// <summary>Job ends of this process still waiting for the storage of the vault at <paramref name="location"/> (all vaults when null).</summary>
    public static IReadOnlyList<AsrJob> PendingEndsOf(string? location) =>
        PendingEnds.Values.Where(e => location is null || e.Location == location).Select(e => e.Record.Clone()).ToList();

    /// <summary>
    /// The next use of a vault: retries the pending job ends of that vault now instead of at their next backoff, and
    /// returns when each was written or failed again, or after <paramref name="wait"/>.
    /// </summary>
    public static async Task FlushPendingEndsAsync(string location, TimeSpan wait)
    {
        var ends = PendingEnds.Values.Where(e => e.Location == location).ToList();
        if (ends.Count == 0) return;
        var attempts = ends.Select(e => e.KickAsync()).ToList();
        await Task.WhenAny(Task.WhenAll(attempts), Task.Delay(wait)).ConfigureAwait(false);
    }

    /// <summary>Starts <see cref="FlushPendingEndsAsync"/> without waiting (a vault opened or a job started on it).</summary>
    internal static void KickPendingEnds(string location)
    {
        foreach (var e in PendingEnds.Values)
            if (e.Location == location) _ = e.KickAsync();
    }

    /// <summary>
    /// Writes one job's end record, retrying with backoff until the storage answers (for as long as this process
    /// lives). A record that another process has taken over meanwhile (a plan run resumed elsewhere) is left alone.
    /// </summary>
    private sealed class PendingEnd(VaultRecords records, AsrJob record, ILogger logger)
    {
        private readonly SemaphoreSlim _wake = new(0);
        private readonly SemaphoreSlim _writing = new(1, 1);
        private TaskCompletionSource _attempted = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public AsrJob Record { get; } = record;
        public string Location => records.Store.Location;
        public int Attempts;

        private readonly TaskCompletionSource _firstAttempt = new(TaskCreationOptions.RunContinuationsAsynchronously);
        /// <summary>Completes when the first write of the end has succeeded or failed.</summary>
        public Task FirstAttempt => _firstAttempt.Task;

        public async Task RunAsync(Task lastProgressSave)
        {
            // The last progress save (if one is under way) lands before the end is written, never after it.
            await lastProgressSave.ConfigureAwait(false);
            var delay = EndRetryFirstDelay;
            while (true)
            {
                bool written = await TryWriteAsync().ConfigureAwait(false);
                _firstAttempt.TrySetResult();
                if (written) return;
                await _wake.WaitAsync(delay).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, EndRetryMaxDelay.Ticks));
            }
        }

        /// <summary>Wakes the retry loop now; completes after its next attempt.</summary>
        public Task KickAsync()
        {
            var attempted = Volatile.Read(ref _attempted).Task;
            _wake.Release();
            return attempted;
        }

        private async Task<bool> TryWriteAsync()
        {
            await _writing.WaitAsync().ConfigureAwait(false);
            Interlocked.Increment(ref Attempts);
            try
            {
                var jobs = new JobStore(records);
                var current = await records.ReadAsync<AsrJob>(VaultLayout.Job(Record.Id), CancellationToken.None).ConfigureAwait(false);
                if (current is null || (!current.IsFinished && current.OwnerProcessId == Record.OwnerProcessId && current.OwnerHost == Record.OwnerHost))
                    await jobs.SaveAsync(Record, CancellationToken.None).ConfigureAwait(false);
                else if (!SameEnd(current))
                    logger.LogWarning("The end of job {JobId} ({State}) was not written: its record was changed by another process meanwhile ({Other})", Record.Id, Record.State, current.State);
                PendingEnds.TryRemove(KeyValuePair.Create(Record.Id, this));
                if (Attempts > 1) logger.LogInformation("The end of job {JobId} ({State}) is recorded in the vault after {Attempts} attempts", Record.Id, Record.State, Attempts);
                return true;
            }
            catch (Exception ex)
            {
                if (Attempts == 1) logger.LogError(ex, "Could not persist the end of job {JobId} ({State}); retrying in the background until the storage answers", Record.Id, Record.State);
                else logger.LogDebug(ex, "Attempt {Attempt} to persist the end of job {JobId} failed", Attempts, Record.Id);
                return false;
            }
            finally
            {
                Interlocked.Exchange(ref _attempted, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
                _writing.Release();
            }
        }

        private bool SameEnd(AsrJob current) => current.State == Record.State && current.EndTimeUtc == Record.EndTimeUtc;
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
        // Ended here (its end perhaps still on its way to the vault: TryGetPendingEnd has it) or never ran here.
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
