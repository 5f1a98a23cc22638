using AsrModule.Engine.Errors;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Jobs;

/// <summary>Job records in the vault.</summary>
public sealed class JobStore
{
    private readonly VaultRecords _records;
    private IVaultStore _store => _records.Store;

    internal JobStore(VaultRecords records) => _records = records;

    public Task SaveAsync(AsrJob job, CancellationToken ct) => _records.WriteAsync(VaultLayout.Job(job.Id), job, ct);

    public async Task<AsrJob> GetAsync(Guid id, CancellationToken ct)
    {
        if (JobRunner.TryGetRunning(id, out var running)) return Decorate(JobRunner.Snapshot(running.Job));
        if (JobRunner.TryGetPendingEnd(id, out var ended)) return Decorate(ended);
        var job = await _records.ReadAsync<AsrJob>(VaultLayout.Job(id), ct).ConfigureAwait(false)
            ?? throw new AsrException(AsrErrorIds.JobNotFound, AsrErrorKind.ObjectNotFound, $"No job with id {id} in the vault at '{_store.Location}'.", id);
        return Decorate(job);
    }

    public async Task<List<AsrJob>> ListAsync(CancellationToken ct)
    {
        JobRunner.KickPendingEnds(_store.Location);
        var jobs = new List<AsrJob>();
        foreach (var o in await _store.ListAsync(VaultLayout.JobsPrefix, ct).ConfigureAwait(false))
        {
            if (!Guid.TryParse(Path.GetFileNameWithoutExtension(o.Key), out var id)) continue;
            if (JobRunner.TryGetRunning(id, out var running)) { jobs.Add(Decorate(JobRunner.Snapshot(running.Job))); continue; }
            // Ended in this process, the end not yet in the vault (the storage did not answer): the true end, not the stale record.
            if (JobRunner.TryGetPendingEnd(id, out var ended)) { jobs.Add(Decorate(ended)); continue; }
            var job = await _records.ReadAsync<AsrJob>(o.Key, ct).ConfigureAwait(false);
            if (job is not null) jobs.Add(Decorate(job));
        }
        return jobs.OrderBy(j => j.StartTimeUtc).ToList();
    }

    private AsrJob Decorate(AsrJob job)
    {
        job.VaultLocation = _store.Location;
        if (job.State == AsrJobState.InProgress && JobRunner.OwnerIsGone(job))
        {
            // The process that ran it died: show it as interrupted (its partial output is never a published point).
            job.State = AsrJobState.Interrupted;
            job.StatusMessage = $"The process that ran this job (pid {job.OwnerProcessId} on {job.OwnerHost}) ended before the job did.";
        }
        return job;
    }
}
