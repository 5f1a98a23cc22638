using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Tests.Unit.RecoveryPoints;

/// <summary>
/// Bulk readers (export, resync) fetch neighbouring extents of a pack in one ranged read: few large requests
/// for a remote vault, and still no byte of a superseded extent far from a live one.
/// </summary>
public sealed class ExtentReadPlanTests
{
    [Fact]
    public async Task Live_extents_are_read_in_few_bounded_ranges_that_skip_large_dead_gaps_and_the_export_stays_bit_exact()
    {
        using var h = await EngineHarness.CreateAsync("k");
        string disk = h.Dir["d.img"];
        TestDisks.CreateRandom(disk, 48L << 20, 1);
        await h.EnableAsync("m", disk);
        TestDisks.ScatterWrites(disk, 0.05, 2);
        await h.CycleAsync("m");
        string sha = TestDisks.Sha256(disk);

        var item = await h.Vault.GetItemAsync("m", default);
        var point = await h.Vault.GetLatestPointAsync(item.Id, default);
        using var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, point!, "d.img", default);
        var live = reader.Map.Segments.Select(s => s.ExtentRef).Distinct().ToList();
        var reads = reader.PlanReads(live);

        // Every live extent exactly once.
        Assert.Equal(live.Order(), reads.SelectMany(r => r).Order());
        foreach (var read in reads)
        {
            var records = read.Select(e => reader.Map.Extents[e]).ToList();
            Assert.Single(records.Select(x => (x.Sequence, x.Record.PackNumber)).Distinct());
            long start = records[0].Record.PackOffset, end = records[^1].Record.PackOffset + records[^1].Record.StoredLength;
            Assert.True(end - start <= RecoveryPointDiskReader.MaxReadBytes, $"a read spans {end - start} bytes");
            for (int i = 1; i < records.Count; i++)
            {
                long gap = records[i].Record.PackOffset - (records[i - 1].Record.PackOffset + records[i - 1].Record.StoredLength);
                Assert.InRange(gap, 0, RecoveryPointDiskReader.MaxReadGapBytes);
            }
        }
        // 48 MiB in ~192 extents of 256 KiB: a handful of reads, not one per extent.
        Assert.True(reads.Count * 8 < live.Count, $"{reads.Count} reads for {live.Count} extents");

        Assert.Equal(sha, (await h.ExportHashesAsync(point!))["d.img"]);
    }
}
