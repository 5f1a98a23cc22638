using System.Buffers;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Storage;
using Xunit;

namespace AsrModule.Tests.Unit.Replication;

/// <summary>
/// A run whose bytes changed in memory after the scan checksummed them is refused before it is stored: stored, it
/// would be found only when the point is read ("checksum mismatch"), and the point would not restore.
/// </summary>
public sealed class DataPipelineGuardTests
{
    internal static byte[] Run(int seed)
    {
        var data = ArrayPool<byte>.Shared.Rent(ReplicationCycle.MaxExtentBlocks * 4096);
        new Random(seed).NextBytes(data.AsSpan(0, 8192));
        return data;
    }

    [Fact]
    public async Task A_run_changed_after_its_checksum_fails_the_pipeline_with_ReplicationDataChanged_and_stores_nothing()
    {
        using var dir = new TempDir();
        var store = new LocalDirectoryStore(dir["vault"]);
        var pipeline = new DataPipeline(store, "item1", 1, "a1b2c3d4", null, 1, 1, default);
        var good = Run(1);
        await pipeline.SubmitAsync(new ExtentWork(0, "disk0", 0, 2, good, 8192, BlockHashTable.Checksum(good.AsSpan(0, 8192))));
        var changed = Run(2);
        ulong before = BlockHashTable.Checksum(changed.AsSpan(0, 8192));
        changed[4100] ^= 0x40; // what another writer of the same array would do between the scan and the worker
        await pipeline.SubmitAsync(new ExtentWork(0, "disk0", 2, 2, changed, 8192, before));

        var ex = await Assert.ThrowsAsync<AsrException>(pipeline.CompleteAsync);
        Assert.Equal(AsrErrorIds.ReplicationDataChanged, ex.ErrorId);
        Assert.Equal(AsrErrorKind.InvalidData, ex.Kind);
        Assert.Contains("blocks 2+2", ex.Message, StringComparison.OrdinalIgnoreCase);
        await pipeline.AbortAsync();
        Assert.Empty(await store.ListAsync("items/", default));
    }

    [Fact]
    public async Task Unchanged_runs_are_stored()
    {
        using var dir = new TempDir();
        var store = new LocalDirectoryStore(dir["vault"]);
        var pipeline = new DataPipeline(store, "item1", 1, "a1b2c3d4", null, 1, 1, default);
        for (int i = 0; i < 3; i++)
        {
            var data = Run(i);
            await pipeline.SubmitAsync(new ExtentWork(0, "disk0", 2 * i, 2, data, 8192, BlockHashTable.Checksum(data.AsSpan(0, 8192))));
        }
        var result = await pipeline.CompleteAsync();
        Assert.Equal(3, result.RecordsByDisk[0].Count);
        Assert.Single(result.PackKeys);
        Assert.True(await store.ExistsAsync(result.PackKeys[0], default));
    }
}
