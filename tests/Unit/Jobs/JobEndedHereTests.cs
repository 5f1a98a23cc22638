using AsrModule.Engine.Jobs;
using AsrModule.Engine.Storage;
using AsrModule.Tests.Unit.Agent;

namespace AsrModule.Tests.Unit.Jobs;

/// <summary>
/// An item shows its last job's progress while that job runs. A job that ended in this process runs nowhere, so
/// showing the item needs no read of its record (issue #15: the agent shows each item again after every record write
/// of a cycle); a job of another process, or a plan run (whose record other processes take over), is still read.
/// </summary>
public sealed class JobEndedHereTests
{
    private static async Task<(EngineHarness H, CountingStore Store, TempDir Dir)> VaultAsync()
    {
        var dir = new TempDir();
        var store = new CountingStore(new LocalDirectoryStore(dir["vault"]));
        var h = await EngineHarness.CreateAsync(store: store);
        await h.NewMachineAsync("m", 64 * 1024, 1);
        return (h, store, dir);
    }

    private static async Task<Guid> RunToEndAsync(EngineHarness h, string operation)
    {
        var record = JobRunner.NewRecord(operation, "m", null);
        // A plan run carries its plan (as Start-AsrRecoveryPlan makes it): what lets another process take its record over.
        if (operation.StartsWith("RecoveryPlan", StringComparison.Ordinal)) record.Plan = new AsrModule.Engine.Plans.PlanRunRecord { PlanName = "p" };
        var run = JobRunner.Start(h.Vault, record, _ => Task.FromResult<AsrJobResult?>(null));
        await run.Completion;
        return run.Job.Id;
    }

    private static async Task<bool> ShowingTheItemReadsJobAsync(EngineHarness h, CountingStore store, Guid jobId)
    {
        var item = await h.Vault.GetItemAsync("m", default);
        await h.Vault.UpdateItemAsync(item.Id, i => i.LastJobId = jobId, default);
        store.Reset();
        await h.Vault.GetItemAsync("m", default);
        return store.ReadKeys.Contains(AsrModule.Engine.Vault.VaultLayout.Job(jobId));
    }

    [Theory]
    [InlineData("ReplicationCycle", false)] // ended here: runs nowhere, its record is not read
    [InlineData("RecoveryPlanTest", true)]  // a plan run: another process may have resumed it, so it is read
    public async Task An_item_whose_last_job_ended_here_is_shown_without_reading_it_unless_it_is_a_plan_run(string operation, bool read)
    {
        var (h, store, dir) = await VaultAsync();
        using var _ = h; using var __ = dir;
        Guid job = await RunToEndAsync(h, operation);
        Assert.Equal(!read, JobRunner.EndedHere(job));
        Assert.Equal(read, await ShowingTheItemReadsJobAsync(h, store, job));
    }

    [Fact]
    public async Task A_job_of_another_process_is_read_and_its_progress_shown()
    {
        var (h, store, dir) = await VaultAsync();
        using var _ = h; using var __ = dir;
        var other = JobRunner.NewRecord("ReplicationCycle", "m", null);
        other.OwnerHost = "another-host"; // alive as far as this process can tell
        other.PercentComplete = 40;
        await h.Vault.Jobs.SaveAsync(other, default);
        Assert.True(await ShowingTheItemReadsJobAsync(h, store, other.Id));
        var shown = await h.Vault.GetItemAsync("m", default);
        Assert.Equal("ReplicationCycle", shown.ActiveJobOperation);
        Assert.Equal(40, shown.ActiveJobPercent);
    }
}
