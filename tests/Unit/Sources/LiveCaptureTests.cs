using AsrModule.Engine.Errors;
using AsrModule.Engine.Events;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication.Tracking.Reflink;

namespace AsrModule.Tests.Unit.Sources;

/// <summary>
/// Issue #14 end to end on the engine: honest consistency labels for live reads, reflink capture and extent-map change
/// tracking on XFS and btrfs with a writer running through the capture, and sparse reads. Every point is checked by
/// hash against the bytes it claims to hold.
/// </summary>
public sealed class LiveCaptureTests
{
    private const long DiskSize = 64L << 20;

    [RequiresLoopMount("mkfs.xfs")]
    public Task Reflink_capture_on_xfs_reads_only_changed_ranges_and_equals_the_clone_instant() => ReflinkCaptureAsync("xfs");

    [RequiresLoopMount("mkfs.btrfs")]
    public Task Reflink_capture_on_btrfs_reads_only_changed_ranges_and_equals_the_clone_instant() => ReflinkCaptureAsync("btrfs");

    private static async Task ReflinkCaptureAsync(string fsType)
    {
        using var fs = LoopFileSystem.Create(fsType);
        using var h = await EngineHarness.CreateAsync();
        string disk = fs.PathOf("web.img");
        SourceTestFiles.CreateRandom(disk, DiskSize, seed: 1);
        var item = await h.EnableAsync("web", disk);
        Assert.Equal("ReflinkClone", item.CaptureMethod);
        var first = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        Assert.Equal(RecoveryPointConsistency.CrashConsistent, first.Consistency);
        Assert.Equal("ReflinkClone", first.Tracker);
        Assert.Contains("reflink clone", first.ConsistencyEvidence);
        Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync(first))["web.img"]);

        // 1% of the 4 KiB blocks rewritten, scattered: the delta reads the changed ranges only.
        var rng = new Random(7);
        int writes = (int)(DiskSize / 4096 / 100);
        for (int i = 0; i < writes; i++) SourceTestFiles.WriteRandomAt(disk, rng.NextInt64(DiskSize / 4096) * 4096, 4096, seed: i);
        var delta = await h.CycleAsync("web");
        Assert.Equal("Delta", delta.Mode);
        Assert.True(delta.BytesScanned <= 2L * writes * 4096, $"read {delta.BytesScanned:N0} bytes for {writes} changed blocks");
        Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync((await h.Vault.GetLatestPointAsync(item.Id, default))!))["web.img"]);

        // A writer runs through the capture: the point is the file at the clone instant, which is the clone kept.
        await using (await Writer.StartAsync(disk, seed: 11))
        {
            await h.CycleAsync("web");
            await h.CycleAsync("web");
        }
        var latest = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        Assert.Equal(RecoveryPointConsistency.CrashConsistent, latest.Consistency);
        string clone = ReflinkCloneDirectory.Of(item, item.Disks[0]).CloneOf("disk0", latest.Sequence, latest.AttemptId!);
        Assert.True(File.Exists(clone), "the latest point's clone is kept for the next comparison");
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(clone)!, "*.clone"));
        Assert.Equal(TestDisks.Sha256(clone), (await h.ExportHashesAsync(latest))["web.img"]);
        Assert.NotEqual(TestDisks.Sha256(clone), TestDisks.Sha256(disk)); // the writer went on after the clone

        // The previous clone lost: the next cycle reads every block and says why; the point is still right.
        File.Delete(clone);
        SourceTestFiles.WriteRandomAt(disk, 4096 * 10, 4096, seed: 99);
        var full = await h.CycleAsync("web");
        Assert.Contains("read in full", full.Note);
        Assert.True(full.BytesScanned >= DiskSize - (1 << 20), $"{full.BytesScanned:N0}");
        Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync((await h.Vault.GetLatestPointAsync(item.Id, default))!))["web.img"]);

        await h.Replication.DisableAsync(await h.Vault.GetItemAsync("web", default), default);
        Assert.False(Directory.Exists(ReflinkCloneDirectory.Of(item, item.Disks[0]).Path), "Disable-AsrReplication removes the clones");
    }

    [RequiresLoopMount("mkfs.ext4")]
    public async Task A_live_read_is_CrashConsistent_only_when_nothing_wrote_during_it()
    {
        using var fs = LoopFileSystem.Create("ext4");
        using var h = await EngineHarness.CreateAsync();
        string disk = fs.PathOf("db.img");
        SourceTestFiles.CreateRandom(disk, DiskSize, seed: 2);
        var item = await h.EnableAsync("db", disk);
        Assert.Equal("HashScan", item.CaptureMethod);
        Assert.Contains("Inconsistent", item.ReachableConsistency);
        var quiet = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        Assert.Equal(RecoveryPointConsistency.CrashConsistent, quiet.Consistency);
        Assert.Contains("nothing wrote", quiet.ConsistencyEvidence);

        // A read can fall between two of the writer's writes (then its point is rightly CrashConsistent): up to 5 cycles.
        Engine.Jobs.AsrJobResult fuzzy;
        await using (await Writer.StartAsync(disk, seed: 5))
        {
            do fuzzy = await h.CycleAsync("db");
            while (fuzzy.Note?.Contains("Inconsistent") != true && (await h.Vault.GetLatestPointAsync(item.Id, default))!.Sequence < quiet.Sequence + 5);
        }
        quiet = (await h.Vault.GetPointsAsync(item, default)).Last(p => p.Consistency == RecoveryPointConsistency.CrashConsistent);
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        Assert.Equal(RecoveryPointConsistency.Inconsistent, point.Consistency);
        Assert.Contains("Inconsistent", fuzzy.Note);
        Assert.Contains("during writes", point.ConsistencyEvidence);
        Assert.Equal(RecoveryPointConsistency.Inconsistent, (await h.Vault.GetItemAsync("db", default)).LastPointConsistency);
        var events = await h.Vault.Events.ListAsync(DateTimeOffset.MinValue, default);
        Assert.Contains(events, e => e.EventType == AsrEventTypes.PointInconsistent && e.ItemName == "db");

        // LatestProcessed skips it; asked, it is used; named, it is used.
        item = await h.Vault.GetItemAsync("db", default);
        Assert.Equal(quiet.Sequence, (await RecoveryPointChoice.LatestProcessed.ResolveAsync(h.Vault, item, default)).Sequence);
        Assert.Equal(point.Sequence, (await (RecoveryPointChoice.LatestProcessed with { AllowInconsistent = true }).ResolveAsync(h.Vault, item, default)).Sequence);
        Assert.Equal(point.Sequence, (await new RecoveryPointChoice(RecoveryPointKind.Specific, point.Sequence).ResolveAsync(h.Vault, item, default)).Sequence);

        // Quiet again: the next point is CrashConsistent and is what LatestProcessed takes.
        await h.CycleAsync("db");
        var next = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        Assert.Equal(RecoveryPointConsistency.CrashConsistent, next.Consistency);
        Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync(next))["db.img"]);
    }

    [Fact]
    public async Task Holes_of_a_sparse_disk_are_not_read()
    {
        using var h = await EngineHarness.CreateAsync();
        string disk = h.Dir["sparse.img"];
        const long size = 2L << 30;
        using (var f = new FileStream(disk, FileMode.Create, FileAccess.Write)) f.SetLength(size);
        long[] at = [0, 1L << 30, size - (4 << 20)];
        foreach (var offset in at) SourceTestFiles.WriteRandomAt(disk, offset, 4 << 20, seed: (int)(offset >> 20));
        await h.Replication.RegisterAsync("sparse", [disk], "default", default);
        var initial = await h.CycleAsync("sparse");
        Assert.True(initial.BytesScanned <= 3 * (4L << 20) + (1 << 20), $"read {initial.BytesScanned:N0} of a disk holding {3 * (4 << 20):N0} bytes of data");
        Assert.Contains("holes not read", initial.Note);
        var item = await h.Vault.GetItemAsync("sparse", default);
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync(point))["sparse.img"]);

        // Data punched out (a hole where the vault has data) is sent as zeros.
        PunchHole(disk, 1L << 30, 4 << 20);
        var delta = await h.CycleAsync("sparse");
        Assert.Equal((4L << 20) / 4096, delta.ChangedBlocks);
        Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync((await h.Vault.GetLatestPointAsync(item.Id, default))!))["sparse.img"]);
    }

    /// <summary>A thread rewriting random 4 KiB blocks of a disk until disposed; started once it has written 50.</summary>
    private sealed class Writer : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private long _written;
        private Task _task = Task.CompletedTask;

        public static async Task<Writer> StartAsync(string disk, int seed)
        {
            var w = new Writer();
            long blocks = new FileInfo(disk).Length / 4096;
            w._task = Task.Run(() =>
            {
                var r = new Random(seed);
                while (!w._stop.IsCancellationRequested)
                {
                    SourceTestFiles.WriteRandomAt(disk, r.NextInt64(blocks) * 4096, 4096, seed: r.Next());
                    Interlocked.Increment(ref w._written);
                }
            });
            while (Interlocked.Read(ref w._written) < 50) await Task.Delay(5);
            return w;
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            await _task;
            _stop.Dispose();
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int fallocate(int fd, int mode, long offset, long length);

    private static void PunchHole(string path, long offset, long length)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
        // FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
        Assert.Equal(0, fallocate((int)handle.DangerousGetHandle(), 0x02 | 0x01, offset, length));
    }
}
