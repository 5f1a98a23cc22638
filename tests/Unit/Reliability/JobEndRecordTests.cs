using System.Diagnostics;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using Xunit.Abstractions;

namespace AsrModule.Tests.Unit.Reliability;

/// <summary>
/// A job's end is always recorded (#12, item 10): a job whose storage went away ends in its own process at once,
/// shows its true end there (never Interrupted, never InProgress), and its record in the vault says so as soon
/// as the storage answers again.
/// </summary>
public sealed class JobEndRecordTests(ITestOutputHelper output)
{
    private static async Task<AsrJob> StoredAsync(IVaultStore store, Guid id) =>
        (await store.ReadAsync<AsrJob>(VaultLayout.Job(id), default))!;

    [Fact]
    public async Task A_job_whose_storage_went_away_ends_at_once_and_its_record_ends_Failed_when_the_storage_is_back()
    {
        using var h = await EngineHarness.CreateAsync();
        var store = new OutageStore(h.Vault.Store);
        var vault = await AsrVault.OpenAsync(store, null, null, default);
        var job = JobRunner.NewRecord("ReplicationCycle", "web01", null);
        var running = JobRunner.Start(vault, job, _ =>
        {
            store.Down = true;
            throw new AsrException(AsrErrorIds.VaultUnavailable, AsrErrorKind.ConnectionError, "The vault is unavailable (test).", vault.Location);
        });
        var watch = Stopwatch.StartNew();
        await running.Completion;
        output.WriteLine($"job completed {watch.Elapsed.TotalSeconds:F2} s after the outage");

        // In its own process the job shows its true end, not Interrupted (its process is alive) nor InProgress.
        var shown = await h.Vault.Jobs.GetAsync(job.Id, default);
        Assert.Equal(AsrJobState.Failed, shown.State);
        Assert.Equal(AsrErrorIds.VaultUnavailable, Assert.Single(shown.Errors).ErrorId);
        Assert.Contains(h.Vault.Jobs.ListAsync(default).Result, j => j.Id == job.Id && j.State == AsrJobState.Failed);
        // The vault still holds the start: the storage has not answered yet.
        Assert.Equal(AsrJobState.InProgress, (await StoredAsync(h.Vault.Store, job.Id)).State);
        Assert.Contains(JobRunner.PendingEndsOf(vault.Location), j => j.Id == job.Id);

        // The storage is back: the background retry writes the end (backoff 0.5 s doubling, here within a few seconds).
        store.Down = false;
        watch.Restart();
        while ((await StoredAsync(h.Vault.Store, job.Id)).State == AsrJobState.InProgress && watch.Elapsed < TimeSpan.FromSeconds(15))
            await Task.Delay(100);
        output.WriteLine($"end recorded {watch.Elapsed.TotalSeconds:F2} s after the storage came back");
        var stored = await StoredAsync(h.Vault.Store, job.Id);
        Assert.Equal(AsrJobState.Failed, stored.State);
        Assert.NotNull(stored.EndTimeUtc);
        Assert.Equal(AsrErrorIds.VaultUnavailable, Assert.Single(stored.Errors).ErrorId);
        Assert.DoesNotContain(JobRunner.PendingEndsOf(vault.Location), j => j.Id == job.Id);
    }

    [Fact]
    public async Task The_next_use_of_the_vault_writes_a_pending_end_at_once()
    {
        using var h = await EngineHarness.CreateAsync();
        var store = new OutageStore(h.Vault.Store);
        var vault = await AsrVault.OpenAsync(store, null, null, default);
        var job = JobRunner.NewRecord("EnableReplication", "db01", null);
        var running = JobRunner.Start(vault, job, async ctx =>
        {
            ctx.Report(40, "Initial replication of 'db01'");
            await Task.Delay(1200); // a progress save lands first
            store.Down = true;
            return new AsrJobResult { Mode = "Initial" };
        });
        await running.Completion;
        // Let the background retries back off past a second, so only the next use can explain a prompt write.
        await Task.Delay(1600);
        store.Down = false;
        var watch = Stopwatch.StartNew();
        await JobRunner.FlushPendingEndsAsync(vault.Location, TimeSpan.FromSeconds(5));
        var stored = await StoredAsync(h.Vault.Store, job.Id);
        output.WriteLine($"flushed in {watch.Elapsed.TotalMilliseconds:F0} ms: {stored.State} {stored.PercentComplete}%");
        Assert.Equal(AsrJobState.Succeeded, stored.State);
        Assert.Equal(100, stored.PercentComplete);
    }

    [Fact]
    public async Task An_end_is_not_written_over_a_record_another_process_took_over()
    {
        using var h = await EngineHarness.CreateAsync();
        var store = new OutageStore(h.Vault.Store);
        var vault = await AsrVault.OpenAsync(store, null, null, default);
        var job = JobRunner.NewRecord("RecoveryPlan", "web", null);
        var running = JobRunner.Start(vault, job, _ =>
        {
            store.Down = true;
            throw new InvalidOperationException("boom");
        });
        await running.Completion;
        // Meanwhile another process (it judged this one gone) took the record over and runs the job again.
        var other = JobRunner.Snapshot(job);
        other.State = AsrJobState.InProgress;
        other.EndTimeUtc = null;
        other.OwnerProcessId = Environment.ProcessId + 100000;
        other.StatusMessage = "Resumed elsewhere";
        await h.Vault.Jobs.SaveAsync(other, default);
        store.Down = false;
        await JobRunner.FlushPendingEndsAsync(vault.Location, TimeSpan.FromSeconds(5));
        var stored = await StoredAsync(h.Vault.Store, job.Id);
        Assert.Equal("Resumed elsewhere", stored.StatusMessage);
        Assert.DoesNotContain(JobRunner.PendingEndsOf(vault.Location), j => j.Id == job.Id);
    }
}
