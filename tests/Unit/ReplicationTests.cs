using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;

namespace AsrModule.Tests.Unit;

public class ReplicationTests
{
    [Theory]
    [InlineData(null)]
    [InlineData("correct horse battery staple")]
    public async Task ThreeCyclesOfScatteredWrites_EveryPointExportsBitExact(string? key)
    {
        using var h = await EngineHarness.CreateAsync(key);
        string os = h.Dir["web01-os.img"], data = h.Dir["web01-data.img"];
        TestDisks.Create(os, 24L << 20, 1);
        TestDisks.Create(data, (16L << 20) + 1536, 2); // not a multiple of the block size
        var expected = new List<Dictionary<string, string>>();
        expected.Add(new() { ["web01-os.img"] = TestDisks.Sha256(os), ["web01-data.img"] = TestDisks.Sha256(data) });
        await h.EnableAsync("web01", os, data);
        for (int cycle = 1; cycle <= 3; cycle++)
        {
            TestDisks.ScatterWrites(os, 0.01, 100 + cycle);
            TestDisks.ScatterWrites(data, 0.02, 200 + cycle);
            expected.Add(new() { ["web01-os.img"] = TestDisks.Sha256(os), ["web01-data.img"] = TestDisks.Sha256(data) });
            var result = await h.CycleAsync("web01");
            Assert.Equal("Delta", result.Mode);
            Assert.True(result.ChangedBytes > 0);
        }

        // A fresh open of the vault (as another process would) sees all four points.
        var reopened = await AsrVault.OpenLocalAsync(h.Dir["vault"], key);
        var item = await reopened.GetItemAsync("web01", default);
        var points = await reopened.GetPointsAsync(item, default);
        Assert.Equal(4, points.Count);
        for (int i = 0; i < points.Count; i++)
        {
            var got = await h.ExportHashesAsync(points[i]);
            Assert.Equal(expected[i], got);
        }
    }

    [Fact]
    public async Task DeltaAfterOnePercentScatteredWrites_AddsAtMostThreeTimesTheChange()
    {
        using var h = await EngineHarness.CreateAsync("k");
        var (disk, _) = await h.NewMachineAsync("m1", 64L << 20, 3, "disk.img");
        long before = h.VaultBytes();
        long changed = TestDisks.ScatterWrites(disk, 0.01, 4);
        var result = await h.CycleAsync("m1");
        long added = h.VaultBytes() - before;
        Assert.True(result.ChangedBytes <= changed, $"changed {result.ChangedBytes} > written {changed}");
        Assert.True(added <= 3 * changed, $"vault grew {added} bytes for {changed} changed bytes");
    }

    [Fact]
    public async Task UnchangedDisk_CycleStoresNothingButPublishesAPoint()
    {
        using var h = await EngineHarness.CreateAsync();
        var (disk, _) = await h.NewMachineAsync("m", 8L << 20, 5);
        var r = await h.CycleAsync("m");
        Assert.Equal(0, r.ChangedBytes);
        Assert.Equal(0, r.BytesStored);
        Assert.Equal(2, r.RecoveryPointSequence);
    }

    [Fact]
    public async Task ZeroedBlocks_AreRecordedAsTrimsAndReadBackAsZeros()
    {
        using var h = await EngineHarness.CreateAsync();
        var (disk, _) = await h.NewMachineAsync("m", 8L << 20, 6);
        using (var fs = new FileStream(disk, FileMode.Open)) { fs.Position = 100_000; fs.Write(new byte[300_000]); }
        string expected = TestDisks.Sha256(disk);
        await h.CycleAsync("m");
        var item = await h.Vault.GetItemAsync("m", default);
        var latest = (await h.Vault.GetPointsAsync(item, default))[^1];
        Assert.Equal(expected, (await h.ExportHashesAsync(latest))["d.img"]);
    }

    [Fact]
    public async Task Reader_RandomAccessMatchesTheSourceAtThatPoint()
    {
        using var h = await EngineHarness.CreateAsync("key");
        string disk = h.Dir["d.img"];
        TestDisks.Create(disk, (6L << 20) + 700, 7);
        byte[] atPoint1 = File.ReadAllBytes(disk);
        await h.EnableAsync("m", disk);
        TestDisks.ScatterWrites(disk, 0.05, 8);
        await h.CycleAsync("m");
        var item = await h.Vault.GetItemAsync("m", default);
        var p1 = (await h.Vault.GetPointsAsync(item, default))[0];
        using var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, p1, "d.img", default);
        var rng = new Random(9);
        for (int i = 0; i < 200; i++)
        {
            long off = rng.NextInt64(atPoint1.Length);
            var buf = new byte[rng.Next(1, 70_000)];
            int n = await reader.ReadAsync(off, buf, default);
            Assert.Equal(Math.Min(buf.Length, atPoint1.Length - off), n);
            Assert.True(atPoint1.AsSpan((int)off, n).SequenceEqual(buf.AsSpan(0, n)), $"mismatch at {off}+{n}");
        }
    }

    [Fact]
    public async Task DiskResize_MarksResyncRequired_ThenResyncSendsOnlyDifferingBlocks()
    {
        using var h = await EngineHarness.CreateAsync();
        var (disk, _) = await h.NewMachineAsync("m", 16L << 20, 10);
        using (var fs = new FileStream(disk, FileMode.Open)) fs.SetLength((16L << 20) + (1 << 20));
        TestDisks.ScatterWrites(disk, 0.01, 11);
        string expected = TestDisks.Sha256(disk);

        var ex = await Assert.ThrowsAsync<AsrException>(() => h.CycleAsync("m"));
        Assert.Equal(AsrErrorIds.DiskSizeChanged, ex.ErrorId);
        var item = await h.Vault.GetItemAsync("m", default);
        Assert.Equal(ProtectedItemState.ResyncRequired, item.State);
        Assert.Contains("d.img", item.ResyncReason);
        Assert.Single(await h.Vault.GetPointsAsync(item, default));

        var r = await h.CycleAsync("m");
        Assert.Equal("Resync", r.Mode);
        // The grown MiB is zeros (unchanged vs an all-zero tail), so only the scattered writes differ.
        Assert.True(r.ChangedBytes <= 2 * 0.01 * (16L << 20), $"resync sent {r.ChangedBytes} bytes");
        item = await h.Vault.GetItemAsync("m", default);
        Assert.Equal(ProtectedItemState.Protected, item.State);
        var latest = (await h.Vault.GetPointsAsync(item, default))[^1];
        Assert.Equal(expected, (await h.ExportHashesAsync(latest))["d.img"]);
    }

    [Fact]
    public async Task LostChangeTracker_NextCycleResyncsByChecksumAndStaysExact()
    {
        using var h = await EngineHarness.CreateAsync();
        var (disk, item) = await h.NewMachineAsync("m", 8L << 20, 12);
        foreach (var f in Directory.GetFiles(h.Dir["vault"], "*.trk", SearchOption.AllDirectories)) File.Delete(f);
        long written = TestDisks.ScatterWrites(disk, 0.02, 13);
        string expected = TestDisks.Sha256(disk);
        var r = await h.CycleAsync("m");
        Assert.Equal("Resync", r.Mode);
        Assert.True(r.ChangedBytes <= written);
        var latest = (await h.Vault.GetPointsAsync(item, default))[^1];
        Assert.Equal(expected, (await h.ExportHashesAsync(latest))["d.img"]);
    }

    [Fact]
    public async Task CancelledCycle_PublishesNothing_AndTheNextCycleIsExact()
    {
        using var h = await EngineHarness.CreateAsync();
        var (disk, _) = await h.NewMachineAsync("m", 64L << 20, 14);
        TestDisks.ScatterWrites(disk, 0.2, 15);
        // Cancel once the scan is a third through: packs have been written, no point published.
        using var cts = new CancellationTokenSource();
        var progress = new EngineHarness.SyncProgress(p => { if (p.PercentComplete >= 30) cts.Cancel(); });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => h.CycleAsync("m", ct: cts.Token, progress: progress));
        var item = await h.Vault.GetItemAsync("m", default);
        Assert.Single(await h.Vault.GetPointsAsync(item, default));
        string expected = TestDisks.Sha256(disk);
        var r = await h.CycleAsync("m");
        Assert.Equal("Delta", r.Mode);
        var latest = (await h.Vault.GetPointsAsync(item, default))[^1];
        Assert.Equal(expected, (await h.ExportHashesAsync(latest))["d.img"]);
    }

    [Fact]
    public async Task TamperedPack_ExportFailsClearly()
    {
        foreach (var key in new[] { null, "k" })
        {
            using var h = await EngineHarness.CreateAsync(key, compressionLevel: 1);
            string disk = h.Dir["d.img"];
            TestDisks.Create(disk, 4L << 20, 16);
            var item = await h.EnableAsync("m", disk);
            var pack = Directory.GetFiles(h.Dir["vault"], "*.pack", SearchOption.AllDirectories).Single();
            using (var fs = new FileStream(pack, FileMode.Open)) { fs.Position = 1000; fs.WriteByte((byte)(fs.ReadByte() ^ 0x5a)); }
            var point = (await h.Vault.GetPointsAsync(item, default))[0];
            var ex = await Assert.ThrowsAsync<AsrException>(() => h.ExportHashesAsync(point));
            Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        }
    }
}
