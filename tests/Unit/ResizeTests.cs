using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;

namespace AsrModule.Tests.Unit;

/// <summary>Disk resizes, including partial last blocks (regressions found in review).</summary>
public class ResizeTests
{
    static async Task<AsrRecoveryPoint> Latest(EngineHarness h, string name)
    {
        var item = await h.Vault.GetItemAsync(name, default);
        return (await h.Vault.GetPointsAsync(item, default))[^1];
    }

    [Fact]
    public async Task Grow_FromPartialLastBlockInsideMultiBlockExtent()
    {
        using var h = await EngineHarness.CreateAsync();
        string disk = h.Dir["d.img"];
        TestDisks.Create(disk, (13L << 20) - 2560, 21); // region 12 is random up to the end
        await h.EnableAsync("m", disk);
        using (var fs = new FileStream(disk, FileMode.Open)) fs.SetLength(14L << 20);
        string expected = TestDisks.Sha256(disk);
        await Assert.ThrowsAsync<AsrException>(() => h.CycleAsync("m"));
        var r = await h.CycleAsync("m");
        Assert.Equal("Resync", r.Mode);
        Assert.Equal(expected, (await h.ExportHashesAsync(await Latest(h, "m")))["d.img"]);
    }

    [Fact]
    public async Task Shrink_ThenExport()
    {
        using var h = await EngineHarness.CreateAsync();
        var (disk, _) = await h.NewMachineAsync("m", 16L << 20, 22);
        using (var fs = new FileStream(disk, FileMode.Open)) fs.SetLength(12L << 20);
        string expected = TestDisks.Sha256(disk);
        await Assert.ThrowsAsync<AsrException>(() => h.CycleAsync("m"));
        var r = await h.CycleAsync("m");
        Assert.Equal(expected, (await h.ExportHashesAsync(await Latest(h, "m")))["d.img"]);
    }

    [Fact]
    public async Task Shrink_ThenGrowBack_ResurrectsOldData()
    {
        using var h = await EngineHarness.CreateAsync();
        var (disk, _) = await h.NewMachineAsync("m", 16L << 20, 23);
        using (var fs = new FileStream(disk, FileMode.Open)) fs.SetLength(12L << 20);
        await Assert.ThrowsAsync<AsrException>(() => h.CycleAsync("m"));
        await h.CycleAsync("m");
        using (var fs = new FileStream(disk, FileMode.Open)) fs.SetLength(16L << 20); // tail is zeros now
        string expected = TestDisks.Sha256(disk);
        await Assert.ThrowsAsync<AsrException>(() => h.CycleAsync("m"));
        await h.CycleAsync("m");
        Assert.Equal(expected, (await h.ExportHashesAsync(await Latest(h, "m")))["d.img"]);
    }

    [Fact]
    public async Task Shrink_ReaderReadAsyncMatches()
    {
        using var h = await EngineHarness.CreateAsync();
        var (disk, _) = await h.NewMachineAsync("m", 16L << 20, 24);
        using (var fs = new FileStream(disk, FileMode.Open)) fs.SetLength((12L << 20) + 100);
        await Assert.ThrowsAsync<AsrException>(() => h.CycleAsync("m"));
        await h.CycleAsync("m");
        var p = await Latest(h, "m");
        using var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, p, "d.img", default);
        var src = File.ReadAllBytes(disk);
        var buf = new byte[src.Length];
        int n = await reader.ReadAsync(0, buf, default);
        Assert.Equal(src.Length, n);
        Assert.True(src.AsSpan().SequenceEqual(buf));
    }

    [Fact]
    public async Task Grow_WithLastOldBlockZeroed()
    {
        using var h = await EngineHarness.CreateAsync();
        string disk = h.Dir["d.img"];
        TestDisks.Create(disk, 16L << 20, 31);
        using (var fs = new FileStream(disk, FileMode.Open)) { fs.Position = (16L << 20) - 4096; fs.Write(Enumerable.Repeat((byte)7, 4096).ToArray()); }
        await h.EnableAsync("m", disk);
        using (var fs = new FileStream(disk, FileMode.Open)) { fs.Position = (16L << 20) - 4096; fs.Write(new byte[4096]); fs.SetLength(17L << 20); }
        string expected = TestDisks.Sha256(disk);
        await Assert.ThrowsAsync<AsrException>(() => h.CycleAsync("m"));
        await h.CycleAsync("m");
        var item = await h.Vault.GetItemAsync("m", default);
        var p = (await h.Vault.GetPointsAsync(item, default))[^1];
        Assert.Equal(expected, (await h.ExportHashesAsync(p))["d.img"]);
    }
}

/// <summary>A failing storage write surfaces as itself, not as the cancellation it causes in other stages.</summary>
public class PipelineFailureTests
{
    sealed class FailingPackStore(AsrModule.Engine.Storage.IVaultStore inner) : AsrModule.Engine.Storage.IVaultStore
    {
        public bool Fail;
        public string Location => inner.Location;
        public Task<bool> ExistsAsync(string key, CancellationToken ct) => inner.ExistsAsync(key, ct);
        public Task<byte[]?> ReadAllAsync(string key, CancellationToken ct) => inner.ReadAllAsync(key, ct);
        public Task ReadRangeAsync(string key, long offset, Memory<byte> d, CancellationToken ct) => inner.ReadRangeAsync(key, offset, d, ct);
        public Task WriteAsync(string key, ReadOnlyMemory<byte> c, CancellationToken ct)
            => Fail && key.EndsWith(".pack") ? throw new IOException("No space left on device") : inner.WriteAsync(key, c, ct);
        public Task<bool> TryCreateAsync(string key, ReadOnlyMemory<byte> c, CancellationToken ct)
            => Fail && key.EndsWith(".pack") ? throw new IOException("No space left on device") : inner.TryCreateAsync(key, c, ct);
        public Task<AsrModule.Engine.Storage.VersionedObject?> ReadVersionedAsync(string key, CancellationToken ct) => inner.ReadVersionedAsync(key, ct);
        public Task<bool> TryReplaceAsync(string key, ReadOnlyMemory<byte> c, string v, CancellationToken ct) => inner.TryReplaceAsync(key, c, v, ct);
        public Task<IReadOnlyList<AsrModule.Engine.Storage.VaultObjectInfo>> ListAsync(string p, CancellationToken ct) => inner.ListAsync(p, ct);
        public Task DeleteAsync(string key, CancellationToken ct) => inner.DeleteAsync(key, ct);
        public Task DeletePrefixAsync(string p, CancellationToken ct) => inner.DeletePrefixAsync(p, ct);
        public Task DeleteIncompleteAsync(string p, CancellationToken ct) => inner.DeleteIncompleteAsync(p, ct);
        public IDisposable? TryAcquireLock(string key) => inner.TryAcquireLock(key);
    }

    // Incompressible data: the first pack fills and uploads (and fails) while most of the disk is still to be
    // read, so the scanner is blocked on the pipeline when the failure cancels it: the error must still be the cause.
    [Theory]
    [InlineData(1, false)] [InlineData(2, false)] [InlineData(3, false)] [InlineData(4, false)] [InlineData(5, false)]
    [InlineData(1, true)] [InlineData(2, true)] [InlineData(3, true)]
    public async Task PackWriteFailure_IsReportedAsItselfNotAsACancellation(int seed, bool incompressible)
    {
        using var dir = new TempDir();
        var store = new FailingPackStore(new AsrModule.Engine.Storage.LocalDirectoryStore(dir["vault"]));
        var vault = await AsrVault.CreateAsync(store, null, null, default);
        await vault.CreatePolicyAsync(new AsrModule.Engine.Policies.AsrPolicy { Name = "default" }, default);
        string disk = dir["d.img"];
        if (incompressible) TestDisks.CreateRandom(disk, 192L << 20, seed);
        else TestDisks.Create(disk, 96L << 20, seed);
        var svc = new AsrModule.Engine.Replication.ReplicationService(vault);
        var item = await svc.RegisterAsync("m", new[] { disk }, "default", default);
        store.Fail = true;
        using var lease = await svc.PrepareCycleAsync(item, false, default);
        var ex = await Record.ExceptionAsync(() => svc.RunCycleAsync(item, false, AsrModule.Engine.Jobs.JobContext.Detached()));
        Assert.IsType<IOException>(ex);
        Assert.Contains("No space left", (await vault.GetItemAsync("m", default)).LastError);
    }
}
