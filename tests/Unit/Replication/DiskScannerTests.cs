using System.Buffers;
using System.Collections;
using System.Collections.Concurrent;
using System.IO.Hashing;
using AsrModule.Engine.Items;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Replication.TrackerTables;
using AsrModule.Engine.Replication.Tracking;
using AsrModule.Engine.Storage;

namespace AsrModule.Tests.Unit.Replication;

/// <summary>
/// The scanner reads ahead on a task of its own and hashes each chunk across the cores (issue #15 item 4): what it
/// produces must be exactly what a single-threaded block-by-block scan produces, and every pooled buffer must go back
/// to the pool whatever ends the scan.
/// </summary>
public sealed class DiskScannerTests
{
    private const int Bs = 4096;
    private const ulong Seed = 0x5EED_1234_ABCDUL;

    /// <summary>An ArrayPool that knows which arrays it lent: a missing, foreign or double return is recorded.</summary>
    private sealed class CountingPool : ArrayPool<byte>
    {
        private readonly ConcurrentDictionary<byte[], byte> _out = new(ReferenceEqualityComparer.Instance);
        public int Rented;
        public readonly ConcurrentQueue<string> Errors = new();
        public int Outstanding => _out.Count;

        public override byte[] Rent(int minimumLength)
        {
            var a = new byte[minimumLength];
            _out[a] = 0;
            Interlocked.Increment(ref Rented);
            return a;
        }

        public override void Return(byte[] array, bool clearArray = false)
        {
            if (!_out.TryRemove(array, out _)) Errors.Enqueue($"returned an array of {array.Length} bytes it did not lend (or twice)");
        }
    }

    /// <summary>A disk in memory; reads are checked to come one at a time and in disk order.</summary>
    private sealed class MemoryCapture(byte[] content, IReadOnlyList<ByteRange>? dataRanges = null, IReadOnlyList<ByteRange>? changed = null) : IDiskCapture
    {
        private int _inRead;
        private long _lastOffset = -1;
        public int Reads;
        public readonly ConcurrentQueue<string> Errors = new();
        /// <summary>Called with the read's index (0-based) before it copies.</summary>
        public Action<int>? OnRead;

        public string DiskId => "disk0";
        public long Size => content.Length;
        public IReadOnlyList<ByteRange>? ChangedRanges => changed;
        public string? HistoryLostReason => null;
        public IReadOnlyList<ByteRange>? DataRanges => dataRanges;

        public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref _inRead) != 1) Errors.Enqueue("two reads at once");
            try
            {
                if (offset <= _lastOffset) Errors.Enqueue($"read at {offset} after {_lastOffset}");
                _lastOffset = offset;
                int index = Reads++;
                OnRead?.Invoke(index);
                cancellationToken.ThrowIfCancellationRequested();
                if (index % 3 == 0) await Task.Yield(); // some reads complete asynchronously, as a remote capture's do
                content.AsSpan((int)offset, buffer.Length).CopyTo(buffer.Span);
            }
            finally
            {
                Interlocked.Decrement(ref _inRead);
            }
        }

        public void Dispose() { }
    }

    /// <summary>Random blocks, zero blocks and zero regions; the regions listed as holes are zeros too.</summary>
    private static (byte[] Content, List<ByteRange> Data) MakeDisk(int size, int seed)
    {
        var rng = new Random(seed);
        var content = new byte[size];
        rng.NextBytes(content);
        int blocks = (size + Bs - 1) / Bs;
        // Single zero blocks (read, found zero) and zero regions (some of them holes, some written zeros).
        for (int i = 0; i < blocks / 10; i++)
        {
            int b = rng.Next(blocks);
            content.AsSpan(b * Bs, Math.Min(Bs, size - b * Bs)).Clear();
        }
        var holes = new List<ByteRange>();
        for (long at = 300L * Bs; at < size; at += 700L * Bs)
        {
            long len = Math.Min(size - at, (long)rng.Next(1, 200) * Bs);
            content.AsSpan((int)at, (int)len).Clear();
            if (rng.Next(2) == 0) holes.Add(new ByteRange(at, len));
        }
        // Data ranges: the complement of the holes.
        var data = new List<ByteRange>();
        long cursor = 0;
        foreach (var h in holes)
        {
            if (h.Offset > cursor) data.Add(new ByteRange(cursor, h.Offset - cursor));
            cursor = h.End;
        }
        if (cursor < size) data.Add(new ByteRange(cursor, size - cursor));
        return (content, data);
    }

    private static ulong[] ReferenceHashes(byte[] content)
    {
        var hashes = new ulong[(content.Length + Bs - 1) / Bs];
        for (int b = 0; b < hashes.Length; b++)
            hashes[b] = XxHash3.HashToUInt64(content.AsSpan(b * Bs, Math.Min(Bs, content.Length - b * Bs)), (long)Seed);
        return hashes;
    }

    /// <summary>The extents a block-by-block scan of <paramref name="blocks"/> (in order) produces: (first, count, zero, checksum).</summary>
    private static List<(long First, int Count, bool Zero, ulong PlainHash)> ReferenceExtents(byte[] content, ulong[] hashes, ulong[] baseline,
        IEnumerable<long> blocks, long[] forced, BitArray? damaged)
    {
        var extents = new List<(long, int, bool, ulong)>();
        long first = -1;
        int count = 0;
        bool zero = false;
        var data = new List<byte>();
        void Flush()
        {
            if (count > 0) extents.Add((first, count, zero, zero ? 0 : XxHash3.HashToUInt64(data.ToArray())));
            count = 0;
            data.Clear();
        }
        foreach (long b in blocks)
        {
            var span = content.AsSpan((int)(b * Bs), (int)Math.Min(Bs, content.Length - b * Bs));
            bool changed = hashes[b] != baseline[b] || forced.Contains(b) || (damaged is not null && b < damaged.Length && damaged[(int)b]);
            bool isZero = !span.ContainsAnyExcept((byte)0);
            if (count > 0 && (!changed || isZero != zero || count == ReplicationCycle.MaxExtentBlocks || b != first + count)) Flush();
            if (!changed) continue;
            if (count == 0) { first = b; zero = isZero; }
            if (!isZero) data.AddRange(span.ToArray());
            count++;
        }
        Flush();
        return extents;
    }

    private sealed record ScanOutcome(DiskScanner Scanner, BlockHashTable Table, List<ExtentRecord> Records, int Reports, TrackerMap Map);

    /// <summary>
    /// Scans <paramref name="capture"/> against <paramref name="baseline"/> with the tracker cut into segments of
    /// <paramref name="segmentBlocks"/> blocks, then reads the new tracker back whole from what the scan wrote.
    /// </summary>
    private static async Task<ScanOutcome> ScanAsync(TempDir dir, CountingPool pool, IDiskCapture capture, BlockHashTable baseline, long[] forced, BitArray? damaged,
        int segmentBlocks = HashSegments.DefaultSegmentBlocks)
    {
        var store = new LocalDirectoryStore(dir["vault-" + Guid.NewGuid().ToString("N")[..6]]);
        var pipeline = new DataPipeline(store, "item", 1, "a1", null, 1, 1, default, pool);
        var scanner = new DiskScanner(pipeline);
        var disk = new ProtectedDisk { DiskId = capture.DiskId, Name = "d", BlockSize = Bs, SizeBytes = capture.Size };
        HashSegments.UseSegmentBlocks(segmentBlocks);
        var hashes = new ScanHashes(new TrackerBaseline.Table(baseline), new TrackerSegmentWriter(store, null, "item", disk.DiskId, 1, "0000000a"));
        HashSegments.UseSegmentBlocks(null);
        int reports = 0;
        long lastCovered = -1;
        TrackerMap map;
        try
        {
            await scanner.ScanAsync(0, disk, capture, capture.ChangedRanges, hashes, forced, damaged, (covered, total, changedBytes, whole) =>
            {
                Assert.True(covered >= lastCovered && covered <= total);
                lastCovered = covered;
                reports++;
            }, default);
            map = await hashes.CompleteAsync(default);
        }
        catch
        {
            await pipeline.AbortAsync();
            throw;
        }
        finally
        {
            await hashes.DisposeAsync();
        }
        var result = await pipeline.CompleteAsync();
        Assert.Equal(segmentBlocks, map.SegmentBlocks);
        var stored = new TrackerBaseline.Stored(map, new TrackerSegmentReader(store, null, "item", disk.DiskId), Seed);
        var table = new BlockHashTable(capture.Size, Bs, Seed);
        for (int s = 0; s < stored.SegmentCount; s++)
            await stored.LoadAsync(s, table.Hashes.AsMemory(s * segmentBlocks, map.BlocksIn(s)), default);
        Assert.Equal(HashSegments.ContentDigest(table, segmentBlocks), map.ContentDigest(Seed));
        return new ScanOutcome(scanner, table, result.RecordsByDisk[0].OrderBy(r => r.FirstBlock).ToList(), reports, map);
    }

    /// <summary>Hashes over <paramref name="baseline"/> whose segments go nowhere (tests of the scan's buffers, not of the tracker).</summary>
    private static ScanHashes Hashes(BlockHashTable baseline) =>
        new(new TrackerBaseline.Table(baseline), new TrackerSegmentWriter(new LocalDirectoryStore(Path.Combine(Path.GetTempPath(), "asr-scan-" + Guid.NewGuid().ToString("N"))), null, "item", "disk0", 1, "0000000a"));

    private static void AssertAllReturned(CountingPool pool, MemoryCapture capture)
    {
        Assert.Empty(pool.Errors);
        Assert.Equal(0, pool.Outstanding);
        Assert.Empty(capture.Errors);
    }

    [Theory]
    [InlineData(1000)]                              // less than one block
    [InlineData(4 << 20)]                           // exactly one chunk
    [InlineData((4 << 20) + Bs)]                    // one chunk and one block
    [InlineData((9 << 20) + 1000)]                  // chunks, then a partial chunk ending in a partial block
    [InlineData((13 << 20) - 3 * Bs)]
    public async Task FullScan_HashesAndExtents_MatchASingleThreadedReference(int size)
    {
        using var dir = new TempDir();
        var (content, data) = MakeDisk(size, size);
        var hashes = ReferenceHashes(content);
        // The baseline: what the disk held before a third of its blocks changed (and a few went back to zero).
        var previous = (byte[])content.Clone();
        var rng = new Random(7);
        for (int i = 0; i < hashes.Length / 3; i++)
        {
            int b = rng.Next(hashes.Length);
            rng.NextBytes(previous.AsSpan(b * Bs, Math.Min(Bs, size - b * Bs)));
        }
        var baseline = BlockHashTable.FromBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(ReferenceHashes(previous).AsSpan()).ToArray(), size, Bs, Seed);
        long[] forced = hashes.Length > 2 ? [hashes.Length - 1, hashes.Length / 2] : [];
        var damaged = new BitArray(hashes.Length);
        for (int b = 0; b < hashes.Length; b += 97) damaged[b] = true;

        foreach (var (ranges, segmentBlocks) in new[] { (null, HashSegments.DefaultSegmentBlocks), (data, HashSegments.DefaultSegmentBlocks), (null, 64), (data, 512) })
        {
            var pool = new CountingPool();
            var capture = new MemoryCapture(content, ranges);
            var outcome = await ScanAsync(dir, pool, capture, baseline, forced, damaged, segmentBlocks);

            Assert.Equal(hashes, outcome.Table.Hashes);
            var expected = ReferenceExtents(content, hashes, baseline.Hashes, Enumerable.Range(0, hashes.Length).Select(b => (long)b), forced, damaged);
            Assert.Equal(expected, outcome.Records.Select(r => (r.FirstBlock, r.BlockCount, (r.Flags & ExtentFlags.Zero) != 0, r.PlainHash)).ToList());
            long holeBytes = ranges is null ? 0 : HoleBytes(ranges, size);
            Assert.Equal(holeBytes, outcome.Scanner.HoleBytesSkipped);
            Assert.Equal(size - holeBytes, outcome.Scanner.BytesRead);
            Assert.Equal(hashes.Length, outcome.Scanner.BlocksCompared);
            Assert.Equal(expected.Sum(e => (long)e.Count), outcome.Scanner.ChangedBlocks);
            Assert.Equal(expected.Sum(e => Math.Min((long)e.Count * Bs, size - e.First * Bs)), outcome.Scanner.ChangedBytes);
            Assert.True(outcome.Reports > 0);
            AssertAllReturned(pool, capture);
        }
    }

    /// <summary>Bytes of whole blocks in holes (what the scan skips): the blocks no data range touches.</summary>
    private static long HoleBytes(List<ByteRange> data, int size)
    {
        long blocks = (size + Bs - 1) / Bs, bytes = 0;
        foreach (var (first, end) in DiskScanner.HoleBlocks(data, Bs, blocks))
            bytes += Math.Min(end * Bs, size) - first * Bs;
        return bytes;
    }

    [Fact]
    public async Task ChangedRangeScan_ReadsOnlyTheRanges_AndMatchesTheReference()
    {
        using var dir = new TempDir();
        int size = (11 << 20) + 512;
        var (previous, _) = MakeDisk(size, 3);
        var content = (byte[])previous.Clone();
        var rng = new Random(11);
        var changed = new List<ByteRange>();
        // Scattered small writes, and two long ones that take several chunks.
        for (long at = 5000; at < size - 70_000; at += rng.Next(20_000, 400_000))
        {
            int len = rng.Next(1, 60_000);
            rng.NextBytes(content.AsSpan((int)at, len));
            changed.Add(new ByteRange(at, len));
        }
        rng.NextBytes(content.AsSpan(1 << 20, 5 << 20));
        changed.Add(new ByteRange(1 << 20, 5 << 20));
        changed = changed.OrderBy(r => r.Offset).ToList();
        var baselineHashes = ReferenceHashes(previous);
        var baseline = BlockHashTable.FromBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(baselineHashes.AsSpan()).ToArray(), size, Bs, Seed);

        foreach (int segmentBlocks in new[] { HashSegments.DefaultSegmentBlocks, 256 })
        {
        var pool = new CountingPool();
        var capture = new MemoryCapture(content, changed: changed);
        var outcome = await ScanAsync(dir, pool, capture, baseline, [], null, segmentBlocks);

        var spans = DiskScanner.BlockSpans(changed, [], Bs, baselineHashes.Length);
        var scannedBlocks = spans.SelectMany(s => Enumerable.Range((int)s.First, (int)(s.End - s.First)).Select(b => (long)b)).ToList();
        Assert.Equal(ReferenceHashes(content), outcome.Table.Hashes); // unread blocks kept the baseline's (equal) hashes
        var expected = ReferenceExtents(content, ReferenceHashes(content), baselineHashes, scannedBlocks, [], null);
        Assert.Equal(expected, outcome.Records.Select(r => (r.FirstBlock, r.BlockCount, (r.Flags & ExtentFlags.Zero) != 0, r.PlainHash)).ToList());
        Assert.Equal(scannedBlocks.Sum(b => (long)Math.Min(Bs, size - b * Bs)), outcome.Scanner.BytesRead);
        AssertAllReturned(pool, capture);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(6)]
    public async Task CancelMidScan_ThrowsCancellation_AndReturnsEveryBuffer(int cancelAtRead)
    {
        using var dir = new TempDir();
        var content = new byte[(28 << 20) + 100]; // 8 reads
        new Random(5).NextBytes(content);
        using var cts = new CancellationTokenSource();
        var pool = new CountingPool();
        var capture = new MemoryCapture(content) { OnRead = i => { if (i == cancelAtRead) cts.Cancel(); } };
        var pipeline = new DataPipeline(new LocalDirectoryStore(dir["vault"]), "item", 1, "a1", null, 1, 1, cts.Token, pool);
        var scanner = new DiskScanner(pipeline);
        var disk = new ProtectedDisk { DiskId = "disk0", Name = "d", BlockSize = Bs, SizeBytes = content.Length };
        var baseline = BlockHashTable.Zero(content.Length, Bs, Seed); // every block changed: runs are open when it stops
        var ex = await Record.ExceptionAsync(() => scanner.ScanAsync(0, disk, capture, null, Hashes(baseline), [], null,
            (_, _, _, _) => { }, cts.Token));
        await pipeline.AbortAsync();
        Assert.IsAssignableFrom<OperationCanceledException>(ex);
        Assert.True(scanner.BytesRead < content.Length);
        Assert.True(pool.Rented > 0);
        AssertAllReturned(pool, capture);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    public async Task ReadFailure_SurfacesAsItself_AfterTheChunksBeforeIt_AndReturnsEveryBuffer(int failAtRead)
    {
        using var dir = new TempDir();
        var content = new byte[10 << 20];
        new Random(6).NextBytes(content);
        var pool = new CountingPool();
        var capture = new MemoryCapture(content) { OnRead = i => { if (i == failAtRead) throw new IOException("Input/output error"); } };
        var pipeline = new DataPipeline(new LocalDirectoryStore(dir["vault"]), "item", 1, "a1", null, 1, 1, default, pool);
        var scanner = new DiskScanner(pipeline);
        var disk = new ProtectedDisk { DiskId = "disk0", Name = "d", BlockSize = Bs, SizeBytes = content.Length };
        var ex = await Record.ExceptionAsync(() => scanner.ScanAsync(0, disk, capture, null, Hashes(BlockHashTable.Zero(content.Length, Bs, Seed)), [], null,
            (_, _, _, _) => { }, default));
        await pipeline.AbortAsync();
        Assert.IsType<IOException>(ex);
        Assert.Equal((long)failAtRead * DiskScanner.ReadChunkBlocks * Bs, scanner.BytesRead);
        AssertAllReturned(pool, capture);
    }

    /// <summary>A pipeline that stops (its store fails) while the scanner is blocked on it: the store's error, and every buffer back.</summary>
    [Fact]
    public async Task PipelineFailure_MidScan_ReturnsEveryBuffer()
    {
        using var dir = new TempDir();
        var content = new byte[48 << 20];
        new Random(8).NextBytes(content); // incompressible: the first 32 MiB pack fills while most of the disk is still to read
        var pool = new CountingPool();
        var capture = new MemoryCapture(content);
        var pipeline = new DataPipeline(new FailingStore(new LocalDirectoryStore(dir["vault"])), "item", 1, "a1", null, 1, 1, default, pool);
        var scanner = new DiskScanner(pipeline);
        var disk = new ProtectedDisk { DiskId = "disk0", Name = "d", BlockSize = Bs, SizeBytes = content.Length };
        var ex = await Record.ExceptionAsync(async () =>
        {
            await scanner.ScanAsync(0, disk, capture, null, Hashes(BlockHashTable.Zero(content.Length, Bs, Seed)), [], null,
                (_, _, _, _) => { }, default);
            await pipeline.CompleteAsync();
        });
        await pipeline.AbortAsync();
        Assert.IsType<IOException>(ex);
        AssertAllReturned(pool, capture);
    }

    private sealed class FailingStore(IVaultStore inner) : IVaultStore
    {
        public string Location => inner.Location;
        public Task<bool> ExistsAsync(string key, CancellationToken ct) => inner.ExistsAsync(key, ct);
        public Task<byte[]?> ReadAllAsync(string key, CancellationToken ct) => inner.ReadAllAsync(key, ct);
        public Task ReadRangeAsync(string key, long offset, Memory<byte> d, CancellationToken ct) => inner.ReadRangeAsync(key, offset, d, ct);
        public Task WriteAsync(string key, ReadOnlyMemory<byte> c, CancellationToken ct) => throw new IOException("No space left on device");
        public Task<bool> TryCreateAsync(string key, ReadOnlyMemory<byte> c, CancellationToken ct) => throw new IOException("No space left on device");
        public Task<VersionedObject?> ReadVersionedAsync(string key, CancellationToken ct) => inner.ReadVersionedAsync(key, ct);
        public Task<bool> TryReplaceAsync(string key, ReadOnlyMemory<byte> c, string v, CancellationToken ct) => inner.TryReplaceAsync(key, c, v, ct);
        public Task<IReadOnlyList<VaultObjectInfo>> ListAsync(string p, CancellationToken ct) => inner.ListAsync(p, ct);
        public Task DeleteAsync(string key, CancellationToken ct) => inner.DeleteAsync(key, ct);
        public Task DeletePrefixAsync(string p, CancellationToken ct) => inner.DeletePrefixAsync(p, ct);
        public Task DeleteIncompleteAsync(string p, CancellationToken ct) => inner.DeleteIncompleteAsync(p, ct);
        public IDisposable? TryAcquireLock(string key) => inner.TryAcquireLock(key);
    }

    /// <summary>The read-ahead alone: chunks in order, never more than its ring of buffers rented, all of them back after.</summary>
    [Fact]
    public async Task ReadAhead_KeepsOrder_AndBoundsItsBuffers()
    {
        var content = new byte[(20 << 20) + 3 * Bs];
        new Random(9).NextBytes(content);
        var pool = new CountingPool();
        var capture = new MemoryCapture(content);
        var segments = new List<(long, long)> { (0, 3), (10, 1500), (1600, 4000), (4100, (content.Length + Bs - 1) / Bs) };
        var readAhead = new ChunkReadAhead(capture, segments, Bs, 1024, 3, pool, null, default);
        try
        {
            foreach (var (first, end) in segments)
            for (long start = first; start < end; start += 1024)
            {
                var chunk = await readAhead.NextAsync(default);
                Assert.Equal(start, chunk.FirstBlock);
                Assert.Equal((int)Math.Min(1024, end - start), chunk.Blocks);
                Assert.True(content.AsSpan((int)(start * Bs), chunk.Bytes).SequenceEqual(chunk.Buffer.AsSpan(0, chunk.Bytes)));
                Assert.True(pool.Outstanding <= 3);
                await Task.Delay(1); // let the reader run ahead and fill the ring
                readAhead.Release(chunk);
            }
            await Assert.ThrowsAsync<InvalidOperationException>(async () => await readAhead.NextAsync(default));
        }
        finally
        {
            await readAhead.DisposeAsync();
        }
        Assert.Equal(0, readAhead.RentedBuffers);
        AssertAllReturned(pool, capture);
    }

    [Fact]
    public void ParallelHasher_EqualsBlockByBlockHashing()
    {
        var content = new byte[(4 << 20) - 1234];
        new Random(10).NextBytes(content);
        int blocks = (content.Length + Bs - 1) / Bs;
        var table = new BlockHashTable(content.Length + 5L * Bs, Bs, Seed);
        ParallelBlockHasher.Hash(table, table.Hashes, 5, content, content.Length, blocks);
        var reference = ReferenceHashes(content);
        Assert.Equal(reference, table.Hashes.AsSpan(5, blocks).ToArray());
        Assert.All(table.Hashes.Take(5).Concat(table.Hashes.Skip(5 + blocks)), h => Assert.Equal(0UL, h));
    }
}
