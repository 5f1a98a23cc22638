using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Replication.Groups;

namespace AsrModule.Tests.Unit.Jobs;

/// <summary>
/// Real multi-phase operations, driven through the engine as the cmdlets drive them: each job's
/// percentage (what Write-Progress and Get-AsrJob show) only moves forward and ends at 100, and no
/// status line shows a second, different percentage. These see the engine's own reports, before the
/// job runner's guard, so an operation whose phases overlap fails here.
/// </summary>
public sealed class OperationProgressTests
{
    private const long DiskSize = 8L << 20; // two 4 MiB reads per disk, 32 extents of 256 KiB

    /// <summary>A protected machine with two disks (one point), in its own vault.</summary>
    private static async Task<(EngineHarness H, AsrProtectedItem Item, string[] Disks)> TwoDiskMachineAsync(string name)
    {
        var h = await EngineHarness.CreateAsync();
        string[] disks = [h.Dir[name + "-a.img"], h.Dir[name + "-b.img"]];
        TestDisks.Create(disks[0], DiskSize, 1);
        TestDisks.Create(disks[1], DiskSize, 2);
        return (h, await h.EnableAsync(name, disks), disks);
    }

    [Fact]
    public async Task A_planned_failover_goes_forward_through_final_sync_source_check_and_export()
    {
        var (h, item, disks) = await TwoDiskMachineAsync("web01");
        using var _ = h;
        TestDisks.ScatterWrites(disks[0], 0.05, 3);
        var progress = new ProgressRecorder();
        using (await h.Replication.PrepareCycleAsync(item, false, default))
            await new FailoverService(h.Vault).FailoverAsync(item, FailoverType.Planned, RecoveryPointChoice.LatestProcessed,
                new AsrLocalTarget(h.Dir["target"]), progress.NewJob("PlannedFailover"));
        progress.AssertOnlyForwardTo100();
        // Every phase reported, in order.
        var statuses = progress.Reports.Select(r => r.StatusMessage).ToList();
        int sync = statuses.FindIndex(s => s.Contains("final sync")), check = statuses.FindIndex(s => s.Contains("no longer changes")),
            export = statuses.FindIndex(s => s.StartsWith("Exporting disk"));
        Assert.True(sync >= 0 && sync < check && check < export, string.Join("\n", statuses.Distinct()));
        Assert.Equal(ProtectedItemState.FailedOver, (await h.Vault.GetItemAsync("web01", default)).State);
    }

    [Fact]
    public async Task A_resync_of_two_disks_goes_forward_and_shows_one_percentage()
    {
        var (h, _, disks) = await TwoDiskMachineAsync("db01");
        using var _ = h;
        TestDisks.ScatterWrites(disks[1], 0.05, 4);
        var progress = new ProgressRecorder();
        var result = await h.CycleAsync("db01", resync: true, progress: progress);
        Assert.Equal("Resync", result.Mode);
        progress.AssertOnlyForwardTo100();
        // The replica's checksums are hashed before the source is read, each disk after the other.
        var statuses = progress.Reports.Select(r => r.StatusMessage).ToList();
        int replicaB = statuses.FindIndex(s => s.Contains("replica of disk 'db01-b.img'")), read = statuses.FindIndex(s => s.Contains(" read, "));
        Assert.True(statuses.FindIndex(s => s.Contains("replica of disk 'db01-a.img'")) < replicaB && replicaB < read, string.Join("\n", statuses.Distinct()));
    }

    [Fact]
    public async Task Commit_reprotect_and_failback_each_go_forward()
    {
        var (h, item, _) = await TwoDiskMachineAsync("app01");
        using var _ = h;
        var failover = new FailoverService(h.Vault);
        using (h.Replication.AcquireLease(item))
            await failover.FailoverAsync(item, FailoverType.Unplanned, RecoveryPointChoice.LatestProcessed, new AsrLocalTarget(h.Dir["target"]), new ProgressRecorder().NewJob());
        item = await h.Vault.GetItemAsync("app01", default);
        await failover.CommitAsync(item, new ProgressRecorder().NewJob());
        // The recovered machine runs and writes; reprotect and failback send that back.
        item = await h.Vault.GetItemAsync("app01", default);
        TestDisks.ScatterWrites(item.Failover!.RecoveredDisks["disk0"], 0.05, 5);

        var reprotect = new ProgressRecorder();
        using (h.Replication.AcquireLease(item))
            await failover.ReprotectAsync(item, null, null, reprotect.NewJob("Reprotect"));
        reprotect.AssertOnlyForwardTo100();

        item = await h.Vault.GetItemAsync("app01", default);
        TestDisks.ScatterWrites(item.Failover!.RecoveredDisks["disk1"], 0.05, 6);
        var failback = new ProgressRecorder();
        using (h.Replication.AcquireLease(item))
            await failover.FailbackAsync(item, null, failback.NewJob("Failback"));
        failback.AssertOnlyForwardTo100();
        Assert.Contains(failback.Reports, r => r.StatusMessage.StartsWith("Resync of 'app01'"));
        Assert.Equal(ProtectedItemState.Protected, (await h.Vault.GetItemAsync("app01", default)).State);
    }

    [Fact]
    public async Task An_unplanned_failover_to_Latest_goes_forward_through_sync_and_export()
    {
        var (h, item, disks) = await TwoDiskMachineAsync("web02");
        using var _ = h;
        TestDisks.ScatterWrites(disks[1], 0.05, 7);
        var progress = new ProgressRecorder();
        using (await h.Replication.PrepareCycleAsync(item, false, default))
            await new FailoverService(h.Vault).FailoverAsync(item, FailoverType.Unplanned, new RecoveryPointChoice(RecoveryPointKind.Latest),
                new AsrLocalTarget(h.Dir["target"]), progress.NewJob("UnplannedFailover"));
        progress.AssertOnlyForwardTo100();
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")] // freeze scripts are executables made with chmod
    public async Task A_group_cycle_goes_forward_through_every_members_scan_then_every_publication()
    {
        using var h = await EngineHarness.CreateAsync();
        string freeze = h.Dir["freeze.sh"];
        File.WriteAllText(freeze, "#!/bin/sh\nexit 0\n");
        File.SetUnixFileMode(freeze, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.UserWrite);
        var members = new List<AsrProtectedItem>();
        foreach (var name in new[] { "g1", "g2", "g3" })
        {
            string disk = h.Dir[name + ".img"];
            TestDisks.Create(disk, DiskSize, name[1]);
            await h.Replication.RegisterAsync(name, [disk], "default", default,
                settings: new ItemReplicationSettings { AgentHost = "h", ReplicationGroup = "g", AppConsistencyScript = freeze });
            await h.CycleAsync(name);
            members.Add(await h.Vault.GetItemAsync(name, default));
        }
        var progress = new ProgressRecorder();
        await GroupReplicationCycle.RunAsync(h.Vault, "g", members, appConsistent: false, progress.NewJob("GroupReplicationCycle"));
        progress.AssertOnlyForwardTo100();
    }

    [Fact]
    public async Task An_export_of_two_disks_goes_forward()
    {
        var (h, item, _) = await TwoDiskMachineAsync("exp01");
        using var _ = h;
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        var progress = new ProgressRecorder();
        await RecoveryPointExporter.ExportAsync(h.Vault, point, h.Dir["export"], false, null, progress.NewJob("Export"));
        progress.AssertOnlyForwardTo100();
    }
}
