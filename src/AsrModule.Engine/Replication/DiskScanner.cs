using System.Buffers;
using System.Collections;
using AsrModule.Engine.Items;
using AsrModule.Engine.Replication.TrackerTables;
using AsrModule.Engine.Replication.Tracking;

namespace AsrModule.Engine.Replication;

/// <summary>
/// Reads the blocks of one cycle's captured disks that may have changed, hashes them into the new point's tracker,
/// and sends the runs of blocks whose hash differs from the baseline (the previous point's tracker, or the replica's)
/// through the data pipeline. The hashes are held one segment at a time (<see cref="ScanHashes"/>): the scan walks the
/// disk in block order, cut at segment boundaries. Blocks in holes (the capture's <see cref="IDiskCapture.DataRanges"/>) are not read:
/// they are zeros, so their hash is known, and only a hole where the baseline had data is sent (as a zero extent).
/// </summary>
internal sealed class DiskScanner(DataPipeline pipeline)
{
    private readonly DataPipeline _pipeline = pipeline;
    /// <summary>The pool of the read buffers and of the runs' data (the pipeline returns a run's data to it).</summary>
    private readonly ArrayPool<byte> _pool = pipeline.Pool;
    internal const int ReadChunkBlocks = 1024;   // 4 MiB reads
    /// <summary>Read buffers of a scan (16 MiB): one being hashed, three read ahead.</summary>
    private const int ReadAheadBuffers = 4;
    /// <summary>How far ahead of the reader a changed-range scan asks the kernel to read (bytes).</summary>
    private const long PrefetchWindow = 64L << 20;

    /// <summary>Bytes read from the disks.</summary>
    public long BytesRead { get; private set; }
    public long BlocksCompared { get; private set; }
    public long ChangedBlocks { get; private set; }
    public long ChangedBytes { get; private set; }
    /// <summary>Bytes the scan covered without reading them: holes of a sparse file or clone.</summary>
    public long HoleBytesSkipped { get; private set; }

    /// <summary>Reports (bytes covered of the disk's spans, span bytes, changed bytes so far, whether the whole disk is scanned).</summary>
    public delegate void Progress(long covered, long total, long changedBytes, bool wholeDisk);

    /// <param name="changed">The tracker's changed ranges; null scans every block.</param>
    /// <param name="forced">Blocks sent whatever their hashes say (the old and new last block of a resized disk).</param>
    /// <param name="damaged">Blocks whose copy in the vault did not read back: sent whatever their hashes say.</param>
    /// <param name="hashes">The baseline's hashes and the new ones, entered segment by segment as the scan goes.</param>
    public async Task ScanAsync(int ordinal, ProtectedDisk disk, IDiskCapture source, IReadOnlyList<ByteRange>? changed, ScanHashes hashes, long[] forced,
        BitArray? damaged, Progress progress, CancellationToken ct)
    {
        int bs = disk.BlockSize;
        long blockCount = hashes.BlockCount;
        var spans = SplitAtSegments(changed is null
            ? new List<(long First, long End)> { (0, blockCount) }
            : BlockSpans(changed, forced, bs, blockCount), hashes.SegmentBlocks);
        hashes.Plan(spans.Select(s => hashes.SegmentOf(s.First)).Distinct().ToList());
        long spanBytes = Math.Max(1, spans.Sum(s => Math.Min(s.End * bs, source.Size) - s.First * bs)), covered = 0;
        var holes = source.DataRanges is { } data ? HoleBlocks(data, bs, blockCount) : [];
        // A delta of scattered changes covers thousands of small spans: one report per 0.5% (and the last one) is enough.
        long reportStep = Math.Max(1, spanBytes / 200), reported = 0;
        void Report()
        {
            if (covered - reported < reportStep && covered < spanBytes) return;
            reported = covered;
            progress(covered, spanBytes, ChangedBytes, changed is null);
        }
        // A delta's changed ranges are small and scattered: read one after another, each waits for the disk. The
        // kernel is asked to read the next ones in the background (up to PrefetchWindow ahead), so they are in flight
        // together. A whole-disk scan is sequential and the kernel's readahead serves it already.
        var prefetch = changed is null ? null : new Prefetcher(source, spans, bs, holes);
        // The reads run ahead on a task of their own (in the order the loop below takes them), so reading overlaps
        // hashing; each chunk is hashed across the cores, then compared and sent here, in block order, as before.
        var dataSegments = spans.SelectMany(s => Segments(s.First, s.End, holes)).Where(s => !s.IsHole).Select(s => (s.First, s.End));
        var readAhead = new ChunkReadAhead(source, dataSegments, bs, ReadChunkBlocks, ReadAheadBuffers, _pool, prefetch is null ? null : prefetch.Ahead, ct);
        var run = new Run(this, _pipeline, _pool, ordinal, disk.DiskId, bs);
        try
        {
            foreach (var (spanFirst, spanEnd) in spans)
            {
                await hashes.EnterAsync(hashes.SegmentOf(spanFirst), ct).ConfigureAwait(false);
                foreach (var (first, end, isHole) in Segments(spanFirst, spanEnd, holes))
                {
                    if (isHole)
                    {
                        await ScanHoleAsync(first, end, source.Size, hashes, forced, damaged, run, ct).ConfigureAwait(false);
                        long bytes = Math.Min(end * bs, source.Size) - first * bs;
                        HoleBytesSkipped += bytes;
                        covered += bytes;
                        Report();
                        continue;
                    }
                    for (long chunkStart = first; chunkStart < end; chunkStart += ReadChunkBlocks)
                    {
                        ct.ThrowIfCancellationRequested();
                        var chunk = await readAhead.NextAsync(ct).ConfigureAwait(false);
                        try
                        {
                            if (chunk.FirstBlock != chunkStart)
                                throw new InvalidOperationException($"The read-ahead returned block {chunk.FirstBlock} where the scan expected block {chunkStart}.");
                            await CompareChunkAsync(chunk, hashes, forced, damaged, run).ConfigureAwait(false);
                        }
                        finally
                        {
                            readAhead.Release(chunk);
                        }
                        BytesRead += chunk.Bytes;
                        BlocksCompared += chunk.Blocks;
                        covered += chunk.Bytes;
                        Report();
                    }
                }
            }
            await run.FlushAsync().ConfigureAwait(false);
        }
        finally
        {
            // Every buffer goes back to the pool whatever ended the scan: the read-ahead's ring, and the data of a run
            // still open when a read, the pipeline or a cancellation stopped it (a submitted run's is the pipeline's).
            run.Discard();
            await readAhead.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Hashes one chunk (across the cores), then compares its blocks with the baseline and adds them to the run, in order.</summary>
    private static async ValueTask CompareChunkAsync(ScanChunk chunk, ScanHashes hashes, long[] forced, BitArray? damaged, Run run)
    {
        int bs = hashes.BlockSize;
        ParallelBlockHasher.Hash(hashes.Hashing, hashes.NewHashes, hashes.IndexOf(chunk.FirstBlock), chunk.Buffer, chunk.Bytes, chunk.Blocks);
        for (int b = 0; b < chunk.Blocks; b++)
        {
            long block = chunk.FirstBlock + b;
            int length = Math.Min(bs, chunk.Bytes - b * bs);
            ulong h = hashes.New(block);
            bool changedBlock = h != hashes.Baseline(block) || IsForced(block, forced, damaged);
            if (!changedBlock && !run.Open) continue;
            var span = chunk.Buffer.AsSpan(b * bs, length);
            bool zero = changedBlock && h == hashes.Hashing.ZeroHash(length) && !span.ContainsAnyExcept((byte)0);
            await run.AddAsync(block, changedBlock, zero, changedBlock && !zero ? span : default, length).ConfigureAwait(false);
        }
    }

    /// <summary>Walks the data segments of a scan ahead of the reader and asks the capture to prefetch them.</summary>
    private sealed class Prefetcher(IDiskCapture source, List<(long First, long End)> spans, int blockSize, List<(long First, long End)> holes)
    {
        private readonly IEnumerator<(long First, long End, bool IsHole)> _segments =
            spans.SelectMany(s => Segments(s.First, s.End, holes)).Where(s => !s.IsHole).GetEnumerator();
        private long _until; // bytes before this offset have been asked for
        private bool _done;

        /// <summary>Prefetches the data segments that start within <see cref="PrefetchWindow"/> of <paramref name="readingAt"/>.</summary>
        public void Ahead(long readingAt)
        {
            while (!_done && _until < readingAt + PrefetchWindow)
            {
                if (!_segments.MoveNext()) { _done = true; return; }
                var (first, end, _) = _segments.Current;
                long offset = first * blockSize, length = Math.Min(end * blockSize, source.Size) - offset;
                // A long segment is read sequentially, which the kernel's own readahead serves: its start is enough.
                source.Prefetch(offset, Math.Min(length, PrefetchWindow));
                _until = offset + length;
            }
        }
    }

    /// <summary>
    /// Blocks in a hole are zeros: their hash is the zero hash, and nothing is read. A hole over a whole segment the
    /// baseline has as zero changes nothing: it is skipped as a whole (a terabyte sparse disk is mostly that).
    /// </summary>
    private async Task ScanHoleAsync(long first, long end, long size, ScanHashes hashes, long[] forced, BitArray? damaged, Run run, CancellationToken ct)
    {
        if (first == hashes.SegmentStart && end == hashes.SegmentEnd && hashes.BaselineSegmentIsZero && !AnyForced(first, end, forced, damaged))
        {
            await run.FlushAsync().ConfigureAwait(false);
            hashes.MarkSegmentZero();
            BlocksCompared += end - first;
            return;
        }
        int bs = hashes.BlockSize;
        ulong fullZero = hashes.Hashing.ZeroHash(bs);
        for (long block = first; block < end; block++)
        {
            if ((block & 0xFFFF) == 0) ct.ThrowIfCancellationRequested();
            int length = (int)Math.Min(bs, size - block * bs);
            ulong h = length == bs ? fullZero : hashes.Hashing.ZeroHash(length);
            hashes.SetNew(block, h);
            bool changedBlock = h != hashes.Baseline(block) || IsForced(block, forced, damaged);
            if (changedBlock || run.Open) await run.AddAsync(block, changedBlock, zero: true, default, length).ConfigureAwait(false);
        }
        BlocksCompared += end - first;
    }

    private static bool AnyForced(long first, long end, long[] forced, BitArray? damaged)
    {
        if (forced.Any(b => b >= first && b < end)) return true;
        if (damaged is null) return false;
        for (long b = first; b < Math.Min(end, damaged.Length); b++)
            if (damaged[(int)b]) return true;
        return false;
    }

    /// <summary>The spans cut at segment boundaries, so each lies in one segment of the tracker (and so does each read).</summary>
    internal static List<(long First, long End)> SplitAtSegments(List<(long First, long End)> spans, int segmentBlocks)
    {
        var split = new List<(long First, long End)>(spans.Count);
        foreach (var (first, end) in spans)
            for (long at = first; at < end; )
            {
                long segmentEnd = Math.Min(end, (at / segmentBlocks + 1) * segmentBlocks);
                split.Add((at, segmentEnd));
                at = segmentEnd;
            }
        return split;
    }

    private static bool IsForced(long block, long[] forced, BitArray? damaged) =>
        (forced.Length > 0 && forced.Contains(block)) || (damaged is not null && block < damaged.Length && damaged[(int)block]);

    /// <summary>Sorted, merged block spans covering the changed byte ranges and the forced blocks.</summary>
    internal static List<(long First, long End)> BlockSpans(IReadOnlyList<ByteRange> changed, long[] forced, int blockSize, long blockCount)
    {
        var spans = changed.Where(r => r.Length > 0)
            .Select(r => (First: r.Offset / blockSize, End: Math.Min(blockCount, (r.End + blockSize - 1) / blockSize)))
            .Concat(forced.Select(b => (First: b, End: b + 1)))
            .Where(s => s.First < s.End)
            .OrderBy(s => s.First).ToList();
        var merged = new List<(long First, long End)>();
        foreach (var s in spans)
        {
            if (merged.Count > 0 && s.First <= merged[^1].End)
                merged[^1] = (merged[^1].First, Math.Max(merged[^1].End, s.End));
            else
                merged.Add(s);
        }
        return merged;
    }

    /// <summary>The block ranges wholly inside holes: the complement of the data ranges, shrunk to whole blocks.</summary>
    internal static List<(long First, long End)> HoleBlocks(IReadOnlyList<ByteRange> data, int blockSize, long blockCount)
    {
        var holes = new List<(long First, long End)>();
        long cursor = 0; // first block not yet known to hold data
        foreach (var r in data.Where(r => r.Length > 0).OrderBy(r => r.Offset))
        {
            long dataFirst = r.Offset / blockSize, dataEnd = Math.Min(blockCount, (r.End + blockSize - 1) / blockSize);
            if (dataFirst > cursor) holes.Add((cursor, Math.Min(dataFirst, blockCount)));
            cursor = Math.Max(cursor, dataEnd);
        }
        if (cursor < blockCount) holes.Add((cursor, blockCount));
        return holes.Where(h => h.First < h.End).ToList();
    }

    /// <summary>Splits [first, end) into the parts outside and inside <paramref name="holes"/>, in order.</summary>
    internal static IEnumerable<(long First, long End, bool IsHole)> Segments(long first, long end, List<(long First, long End)> holes)
    {
        long at = first;
        int i = LowerBound(holes, first);
        for (; i < holes.Count && holes[i].First < end; i++)
        {
            long hf = Math.Max(holes[i].First, at), he = Math.Min(holes[i].End, end);
            if (hf >= he) continue;
            if (hf > at) yield return (at, hf, false);
            yield return (hf, he, true);
            at = he;
        }
        if (at < end) yield return (at, end, false);
    }

    /// <summary>The first hole that ends after <paramref name="block"/>.</summary>
    private static int LowerBound(List<(long First, long End)> holes, long block)
    {
        int lo = 0, hi = holes.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) / 2;
            if (holes[mid].End <= block) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    /// <summary>
    /// The run of consecutive changed blocks being gathered: all zeros or all data, at most
    /// <see cref="ReplicationCycle.MaxExtentBlocks"/> long; it becomes one extent.
    /// </summary>
    private sealed class Run(DiskScanner scanner, DataPipeline pipeline, ArrayPool<byte> pool, int ordinal, string diskId, int blockSize)
    {
        private long _first = -1;
        private int _blocks, _bytes;
        private bool _zero;
        private byte[]? _data;

        public bool Open => _blocks > 0;

        /// <summary>
        /// Adds a compared block; a block that does not continue the run ends it first (its extent is submitted, the
        /// returned task completes when the pipeline took it). Not async: <paramref name="data"/> is copied before returning.
        /// </summary>
        public ValueTask AddAsync(long block, bool changed, bool zero, ReadOnlySpan<byte> data, int length)
        {
            ValueTask flushed = default;
            if (_blocks > 0 && (!changed || zero != _zero || _blocks == ReplicationCycle.MaxExtentBlocks || block != _first + _blocks))
                flushed = FlushAsync();
            if (!changed) return flushed;
            if (_blocks == 0)
            {
                _first = block;
                _zero = zero;
                if (!zero) _data = pool.Rent(ReplicationCycle.MaxExtentBlocks * blockSize);
            }
            if (!zero) data.CopyTo(_data.AsSpan(_bytes));
            _blocks++;
            _bytes += length;
            return flushed;
        }

        /// <summary>Submits the run as one extent. Takes the run's state before its first await, so a new run may start at once.</summary>
        public async ValueTask FlushAsync()
        {
            if (_blocks == 0) return;
            scanner.ChangedBlocks += _blocks;
            scanner.ChangedBytes += _bytes;
            var work = _zero
                ? new ExtentWork(ordinal, diskId, _first, _blocks, null, 0, 0)
                : new ExtentWork(ordinal, diskId, _first, _blocks, _data, _bytes, BlockHashTable.Checksum(_data.AsSpan(0, _bytes)));
            _blocks = 0;
            _bytes = 0;
            _data = null;
            await pipeline.SubmitAsync(work).ConfigureAwait(false);
        }

        /// <summary>Drops a run that was not submitted (the scan stopped with it open): its buffer goes back to the pool.</summary>
        public void Discard()
        {
            if (_data is not null) pool.Return(_data);
            _data = null;
            _blocks = 0;
            _bytes = 0;
        }
    }
}
