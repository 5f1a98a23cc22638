using System.Diagnostics;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using Xunit.Abstractions;

namespace AsrModule.Tests.Unit.Reliability;

/// <summary>
/// A failed or killed initial replication leaves the item able to go on (#12, item 4): the next cycle, resync or
/// agent cycle runs it again, removes what the dead attempt stored, and publishes a point equal to the source.
/// </summary>
public sealed class InitialReplicationRetryTests(ITestOutputHelper output)
{
    /// <summary>The id of a process that has ended (what a killed Enable-AsrReplication leaves as the job's owner).</summary>
    private static (int Pid, DateTimeOffset Start) DeadProcess()
    {
        // A process that lives until it is killed: its start time is read while it runs (a `true` may be gone already).
        using var p = Process.Start(new ProcessStartInfo("sleep", "60") { UseShellExecute = false })!;
        var start = new DateTimeOffset(p.StartTime.ToUniversalTime());
        p.Kill();
        p.WaitForExit();
        return (p.Id, start);
    }

    private static async Task<long> ObjectsOfSequenceAsync(AsrVault vault, string itemId, long sequence)
    {
        long bytes = 0;
        foreach (var prefix in new[] { VaultLayout.PacksPrefix(itemId), VaultLayout.IndexPrefix(itemId), VaultLayout.TrackerDirPrefix(itemId) })
            foreach (var o in await vault.Store.ListAsync(prefix, default))
                if (VaultLayout.SequenceOf(o.Key) == sequence) bytes += o.Length;
        return bytes;
    }

    [Fact]
    public async Task A_disk_full_initial_replication_fails_and_the_next_cycle_runs_it_again_with_its_leftovers_removed()
    {
        using var h = await EngineHarness.CreateAsync();
        string disk = h.Dir["db01.img"];
        TestDisks.CreateRandom(disk, 80 << 20, 7); // incompressible: three ~32 MiB packs
        var store = new OutageStore(h.Vault.Store);
        var vault = await AsrVault.OpenAsync(store, null, null, default);
        var service = new Engine.Replication.ReplicationService(vault);
        var item = await service.RegisterAsync("db01", [disk], "default", default);
        // The vault's disk fills up at the second pack.
        store.FailWrite = key => key.EndsWith("-0001.pack", StringComparison.Ordinal);
        var lease = await service.PrepareCycleAsync(item, false, default);
        var running = JobRunner.Start(vault, JobRunner.NewRecord("EnableReplication", item.Name, item.Id), async ctx =>
        {
            using (lease) return await service.RunCycleAsync(item, false, ctx);
        });
        await running.Completion;
        Assert.Equal(AsrJobState.Failed, running.Job.State);
        long orphanBytes = await ObjectsOfSequenceAsync(vault, item.Id, 1);
        Assert.True(orphanBytes > 16 << 20, $"the failed attempt left {orphanBytes} bytes");

        store.FailWrite = null;
        var shown = await vault.GetItemAsync("db01", default);
        Assert.Equal(ProtectedItemState.InitialReplicationPending, shown.State);
        Assert.False(shown.NeedsResync);
        Assert.Contains("Invoke-AsrReplication", shown.AllowedOperations);
        Assert.Contains("Resume-AsrResync", shown.AllowedOperations);
        Assert.NotNull(shown.LastError);

        var result = await h.CycleAsync("db01");
        output.WriteLine($"failed attempt left {orphanBytes:N0} B; the next cycle: {result.Mode}, point {result.RecoveryPointSequence}, {result.BytesStored:N0} B stored");
        Assert.Equal("Initial", result.Mode);
        Assert.Equal(1L, result.RecoveryPointSequence);
        var after = await h.Vault.GetItemAsync("db01", default);
        Assert.Equal(ProtectedItemState.Protected, after.State);
        Assert.Null(after.LastError);
        var point = (await h.Vault.GetLatestPointAsync(after.Id, default))!;
        Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync(point))["db01.img"]);
        // Exactly the point's packs remain: nothing of the failed attempt.
        Assert.Equal(point.Packs.Order(StringComparer.Ordinal), (await h.Vault.Store.ListAsync(VaultLayout.PacksPrefix(after.Id), default)).Select(o => o.Key));
    }

    [Fact]
    public async Task A_killed_initial_replication_is_resumed_by_Resume_AsrResync_and_its_orphans_are_collected()
    {
        using var h = await EngineHarness.CreateAsync();
        string disk = h.Dir["web01.img"];
        TestDisks.Create(disk, 24 << 20, 3);
        var item = await h.Replication.RegisterAsync("web01", [disk], "default", default);
        // What a SIGKILL mid-copy leaves: the job record InProgress with a dead owner, the item marked, packs stored.
        var (pid, start) = DeadProcess();
        var job = JobRunner.NewRecord("EnableReplication", item.Name, item.Id);
        job.OwnerProcessId = pid;
        job.OwnerProcessStartUtc = start;
        await h.Vault.Jobs.SaveAsync(job, default);
        await h.Vault.UpdateItemAsync(item.Id, i => { i.CycleInProgressJobId = job.Id; i.LastJobId = job.Id; }, default);
        await h.Vault.Store.WriteAsync(VaultLayout.Pack(item.Id, 1, "0badf00d", 0), new byte[3 << 20], default);
        await h.Vault.Store.WriteAsync(VaultLayout.Pack(item.Id, 1, null, 7), new byte[1 << 20], default);

        var shown = await h.Vault.GetItemAsync("web01", default);
        Assert.Equal(AsrJobState.Interrupted, (await h.Vault.Jobs.GetAsync(job.Id, default)).State);
        Assert.Equal(ProtectedItemState.InitialReplicationPending, shown.State);
        Assert.False(shown.NeedsResync); // nothing to compare checksums with: not a resync
        Assert.Contains($"job {job.Id}", shown.LastError);
        Assert.Contains("Invoke-AsrReplication", shown.LastError);

        // Resume-AsrResync (and Invoke-AsrReplication -Resync) on an item without a point runs the initial replication.
        var result = await h.CycleAsync("web01", resync: true);
        Assert.Equal("Initial", result.Mode);
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync(point))["web01.img"]);
        Assert.Equal(point.Packs.Order(StringComparer.Ordinal), (await h.Vault.Store.ListAsync(VaultLayout.PacksPrefix(item.Id), default)).Select(o => o.Key));
        Assert.Equal(ProtectedItemState.Protected, (await h.Vault.GetItemAsync("web01", default)).State);
    }

    [Fact]
    public async Task An_initial_replication_still_running_makes_the_retry_ProtectedItemBusy()
    {
        using var h = await EngineHarness.CreateAsync();
        string disk = h.Dir["app01.img"];
        TestDisks.Create(disk, 4 << 20, 5);
        var item = await h.Replication.RegisterAsync("app01", [disk], "default", default);
        using (var enable = await h.Replication.PrepareCycleAsync(item, false, default))
        {
            var ex = await Assert.ThrowsAsync<AsrException>(() => h.Replication.PrepareCycleAsync(item, false, default));
            Assert.Equal(AsrErrorIds.ProtectedItemBusy, ex.ErrorId);
            Assert.Equal(AsrErrorKind.ResourceBusy, ex.Kind);
            Assert.Contains("Wait-AsrJob", ex.Message);
        }
        Assert.Equal("Initial", (await h.CycleAsync("app01")).Mode);
    }

    [Fact]
    public void What_is_refused_before_the_first_point_says_what_is_allowed_now()
    {
        var item = new AsrProtectedItem { Name = "web01", State = ProtectedItemState.InitialReplicationPending };
        ItemStateMachine.EnsureAllowed(item, ItemOperation.Replicate);
        ItemStateMachine.EnsureAllowed(item, ItemOperation.Resync);
        ItemStateMachine.EnsureAllowed(item, ItemOperation.Disable);
        var ex = Assert.Throws<AsrException>(() => ItemStateMachine.EnsureAllowed(item, ItemOperation.ExportRecoveryPoint));
        Assert.Equal(AsrErrorIds.InvalidStateTransition, ex.ErrorId);
        Assert.Contains("Allowed now: Invoke-AsrReplication, Resume-AsrResync, Disable-AsrReplication.", ex.Message);
        Assert.Contains("no recovery point yet", ex.Message);
    }
}
