using AsrModule.Engine.Failover;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Exports;
using AsrModule.Engine.Items;
using AsrModule.Engine.Replication;

namespace AsrModule.Tests.Unit;

public class OverlayBlockDeviceTests
{
    private sealed class MemoryDevice(byte[] data) : IBlockDevice
    {
        public long Length => data.Length;
        public bool IsReadOnly => true;
        public int Writes;
        public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken ct)
        {
            data.AsSpan((int)offset, buffer.Length).CopyTo(buffer.Span);
            return ValueTask.CompletedTask;
        }
        public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> d, CancellationToken ct) { Writes++; throw new NotSupportedException(); }
        public ValueTask FlushAsync(CancellationToken ct) => ValueTask.CompletedTask;
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task RandomWrites_ReadBackLikeAModel_AndNeverTouchTheBase(int seed)
    {
        using var dir = new TempDir();
        var rng = new Random(seed);
        var baseBytes = new byte[(1 << 20) + 1000]; // not a multiple of the block size
        rng.NextBytes(baseBytes);
        var original = (byte[])baseBytes.Clone();
        var model = (byte[])baseBytes.Clone();
        var baseDevice = new MemoryDevice(baseBytes);
        await using var overlay = new OverlayBlockDevice(baseDevice, dir["o.overlay"]);
        for (int i = 0; i < 300; i++)
        {
            int len = rng.Next(1, 20_000);
            int off = rng.Next(0, model.Length - len);
            var data = new byte[len];
            rng.NextBytes(data);
            await overlay.WriteAsync(off, data, default);
            data.CopyTo(model, off);
            if (i % 25 == 0)
            {
                int rlen = rng.Next(1, 70_000), roff = rng.Next(0, model.Length - rlen);
                var got = new byte[rlen];
                await overlay.ReadAsync(roff, got, default);
                Assert.True(model.AsSpan(roff, rlen).SequenceEqual(got), $"read {roff}+{rlen} after {i} writes");
            }
        }
        var all = new byte[model.Length];
        await overlay.ReadAsync(0, all, default);
        Assert.Equal(model, all);
        Assert.Equal(original, baseBytes);
        Assert.Equal(0, baseDevice.Writes);
        Assert.True(overlay.WrittenBytes > 0 && overlay.WrittenBytes <= model.Length + OverlayBlockDevice.BlockSize);
    }
}

public class DiskChecksumsTests
{
    [Fact]
    public async Task CopiesOnlyTheBlocksThatDiffer_AndTheTargetEndsEqual()
    {
        using var dir = new TempDir();
        string a = dir["a.img"], b = dir["b.img"];
        TestDisks.Create(a, (8L << 20) + 300, 1);
        File.Copy(a, b);
        long written = TestDisks.ScatterWrites(a, 0.03, 2);
        var ta = await DiskChecksums.HashAsync(a, new FileInfo(a).Length, 4096, 42, null, default);
        var tb = await DiskChecksums.HashAsync(b, new FileInfo(a).Length, 4096, 42, null, default);
        DiskSyncStats stats;
        using (var source = new RecoveredDiskFile(a)) stats = await DiskChecksums.CopyDifferencesAsync(source, ta, b, tb, null, default);
        Assert.True(stats.BytesSent <= written, $"{stats.BytesSent} > {written}");
        Assert.True(stats.BytesSent > written / 2);
        Assert.Equal(TestDisks.Sha256(a), TestDisks.Sha256(b));
        Assert.Equal(ta.Hashes.Length, stats.BlocksCompared);
    }

    [Fact]
    public async Task AMissingTarget_IsCreatedAsAFullCopy_OfEveryNonZeroBlock()
    {
        using var dir = new TempDir();
        string a = dir["a.img"], b = dir["sub/new.img"];
        TestDisks.Create(a, 4L << 20, 3); // half zeros
        long size = new FileInfo(a).Length;
        var ta = await DiskChecksums.HashAsync(a, size, 4096, 7, null, default);
        var tb = await DiskChecksums.HashAsync(b, size, 4096, 7, null, default);
        DiskSyncStats stats;
        using (var source = new RecoveredDiskFile(a)) stats = await DiskChecksums.CopyDifferencesAsync(source, ta, b, tb, null, default);
        Assert.Equal(2L << 20, stats.BytesSent);
        Assert.Equal(TestDisks.Sha256(a), TestDisks.Sha256(b));
    }
}

public class ItemStateMachineTests
{
    [Fact]
    public void EveryStateHasARow_AndRefusalsNameTheStateAndTheAllowedCommands()
    {
        foreach (var state in Enum.GetValues<ProtectedItemState>())
            Assert.NotEmpty(ItemStateMachine.AllowedOperations(state));
        var item = new AsrProtectedItem { Name = "m", State = ProtectedItemState.Committed };
        var ex = Assert.Throws<AsrException>(() => ItemStateMachine.EnsureAllowed(item, ItemOperation.Failback));
        Assert.Equal(AsrErrorIds.InvalidStateTransition, ex.ErrorId);
        Assert.Contains("state Committed", ex.Message);
        Assert.Contains("Update-AsrProtectionDirection", ex.Message);
        Assert.Contains("Invoke-AsrFailback", ex.Message);
    }

    [Theory]
    [InlineData(ProtectedItemState.Protected, ItemOperation.TestFailover, true)]
    [InlineData(ProtectedItemState.TestFailedOver, ItemOperation.Replicate, true)]
    [InlineData(ProtectedItemState.TestFailedOver, ItemOperation.Failover, false)]
    [InlineData(ProtectedItemState.FailedOver, ItemOperation.Replicate, false)]
    [InlineData(ProtectedItemState.FailedOver, ItemOperation.ChangeRecoveryPoint, true)]
    [InlineData(ProtectedItemState.Committed, ItemOperation.ChangeRecoveryPoint, false)]
    [InlineData(ProtectedItemState.Committed, ItemOperation.Reprotect, true)]
    [InlineData(ProtectedItemState.Reprotected, ItemOperation.Failback, true)]
    [InlineData(ProtectedItemState.Protected, ItemOperation.Reprotect, false)]
    public void TheLifecycleTable(ProtectedItemState state, ItemOperation op, bool allowed) =>
        Assert.Equal(allowed, ItemStateMachine.IsAllowed(state, op));
}
