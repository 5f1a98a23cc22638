using AsrModule.Engine.Replication;
using AsrModule.Engine.Storage;
using AsrModule.Tests.Unit.Agent;
using Xunit;

namespace AsrModule.Tests.Unit.Replication;

/// <summary>
/// Every pack the writer begins has exactly one owner that disposes it: the writer while it fills it, then its commit.
/// A second disposal of an upload whose store reuses what it holds (a pooled buffer, a file name) would free it twice.
/// </summary>
public sealed class DataPipelinePackOwnershipTests
{
    /// <summary>
    /// A pack that is full after one append and whose commit waits for <paramref name="commitGate"/>, cancelled or not (a
    /// commit that ended at the cancellation would free its slot and race the cancelled wait for it); counts its disposals.
    /// </summary>
    private sealed class HeldUpload(Action appended, Task commitGate) : IObjectUpload
    {
        private int _disposals;
        public int Disposals => _disposals;
        public long Length { get; private set; }

        public Task AppendAsync(ReadOnlyMemory<byte> part, CancellationToken cancellationToken)
        {
            Length = DataPipeline.PackTargetBytes;
            appended();
            return Task.CompletedTask;
        }

        public async Task<bool> CommitAsync(CancellationToken cancellationToken)
        {
            await commitGate;
            return true;
        }

        public ValueTask DisposeAsync()
        {
            Interlocked.Increment(ref _disposals);
            return ValueTask.CompletedTask;
        }
    }

    [Fact]
    public async Task A_pack_whose_wait_for_a_commit_slot_is_cancelled_is_disposed_once()
    {
        using var dir = new TempDir();
        var uploads = new List<HeldUpload>();
        var thirdAppended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var commitGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int appends = 0;
        var store = new CountingStore(new LocalDirectoryStore(dir["vault"]))
        {
            Uploads = _ =>
            {
                var upload = new HeldUpload(() => { if (Interlocked.Increment(ref appends) == 3) thirdAppended.TrySetResult(); }, commitGate.Task);
                lock (uploads) uploads.Add(upload);
                return upload;
            },
        };
        using var cancel = new CancellationTokenSource();
        var pipeline = new DataPipeline(store, "item1", 1, "a1b2c3d4", null, 1, 1, cancel.Token);
        for (int i = 0; i < 3; i++)
        {
            var data = DataPipelineGuardTests.Run(i);
            await pipeline.SubmitAsync(new ExtentWork(0, "disk0", 2 * i, 2, data, 8192, BlockHashTable.Checksum(data.AsSpan(0, 8192))));
        }
        // Two full packs hold both commit slots (their commits stall); the third is full and waits for a slot.
        await thirdAppended.Task.WaitAsync(TimeSpan.FromSeconds(30));
        cancel.Cancel();
        // The cancelled wait gives the third pack up (its first disposal); then the held commits may end.
        var third = uploads[2];
        for (var waited = System.Diagnostics.Stopwatch.StartNew(); third.Disposals == 0; await Task.Delay(10))
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(30), "the third pack was never given up");
        commitGate.SetResult();
        await pipeline.AbortAsync();

        Assert.Equal(3, uploads.Count);
        Assert.All(uploads, u => Assert.Equal(1, u.Disposals));
    }
}
