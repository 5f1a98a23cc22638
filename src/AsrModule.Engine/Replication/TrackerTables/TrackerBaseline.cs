namespace AsrModule.Engine.Replication.TrackerTables;

/// <summary>
/// What a cycle compares a disk's new block hashes with, one segment at a time: the previous point's tracker, the hashes
/// of the vault's replica (a resync), or an all-zero disk (initial replication).
/// </summary>
internal abstract class TrackerBaseline
{
    protected TrackerBaseline(long diskSize, int blockSize, ulong seed, int segmentBlocks)
    {
        DiskSize = diskSize;
        BlockSize = blockSize;
        Seed = seed;
        SegmentBlocks = segmentBlocks;
    }

    public long DiskSize { get; }
    public int BlockSize { get; }
    public ulong Seed { get; }
    /// <summary>The segment size the new tracker is cut into: a stored tracker's own, so its unchanged segments carry over.</summary>
    public int SegmentBlocks { get; }
    public long BlockCount => BlockHashTable.BlockCount(DiskSize, BlockSize);
    public int SegmentCount => HashSegments.SegmentCount(BlockCount, SegmentBlocks);

    /// <summary>Reads segment <paramref name="segment"/>'s hashes into <paramref name="into"/> (as long as the segment).</summary>
    public abstract ValueTask LoadAsync(int segment, Memory<ulong> into, CancellationToken ct);

    /// <summary>The stored segment the new tracker can name as it is when its hashes did not change; null when it must be written.</summary>
    public virtual TrackerSegment? Reusable(int segment) => null;

    /// <summary>Whether segment <paramref name="segment"/> is known to be all zero blocks without reading it.</summary>
    public virtual bool IsZero(int segment) => false;

    /// <summary>Whether loading segment <paramref name="segment"/> reads the vault (worth starting ahead of the scan).</summary>
    public virtual bool ReadsVault(int segment) => false;

    /// <summary>Initial replication, or a resync with nothing to compare: every block was zero.</summary>
    public sealed class Zero(long diskSize, int blockSize, ulong seed) : TrackerBaseline(diskSize, blockSize, seed, HashSegments.SegmentBlocks)
    {
        public override ValueTask LoadAsync(int segment, Memory<ulong> into, CancellationToken ct)
        {
            HashSegments.FillZero(into.Span, Seed, DiskSize, BlockSize, SegmentBlocks, segment);
            return ValueTask.CompletedTask;
        }

        public override TrackerSegment? Reusable(int segment) => TrackerSegment.Zero;
        public override bool IsZero(int segment) => true;
    }

    /// <summary>
    /// A whole table in memory: the hashes of the vault's replica that a resync computed, or a tracker of format 2 (one
    /// object per disk, written before segments). Nothing carries over: the new tracker writes every segment.
    /// </summary>
    public sealed class Table(BlockHashTable table) : TrackerBaseline(table.DiskSize, table.BlockSize, table.Seed, HashSegments.SegmentBlocks)
    {
        public override ValueTask LoadAsync(int segment, Memory<ulong> into, CancellationToken ct)
        {
            table.Hashes.AsSpan((int)((long)segment * SegmentBlocks), into.Length).CopyTo(into.Span);
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>The previous point's tracker of format 3: its map in memory, each segment read when the scan reaches it.</summary>
    public sealed class Stored(TrackerMap map, TrackerSegmentReader reader, ulong seed) : TrackerBaseline(map.DiskSize, map.BlockSize, seed, map.SegmentBlocks)
    {
        public TrackerMap Map => map;

        public override async ValueTask LoadAsync(int segment, Memory<ulong> into, CancellationToken ct)
        {
            var s = map.Segments[segment];
            switch (s.Kind)
            {
                case TrackerSegmentKind.Zero:
                    HashSegments.FillZero(into.Span, Seed, DiskSize, BlockSize, SegmentBlocks, segment);
                    break;
                case TrackerSegmentKind.Inline:
                    s.Hashes.AsSpan().CopyTo(into.Span);
                    break;
                default:
                    await reader.ReadAsync(map, segment, into, ct).ConfigureAwait(false);
                    break;
            }
        }

        public override TrackerSegment? Reusable(int segment) => map.Segments[segment];
        public override bool IsZero(int segment) => map.Segments[segment].Kind == TrackerSegmentKind.Zero;
        public override bool ReadsVault(int segment) => map.Segments[segment].Kind == TrackerSegmentKind.Stored;
    }
}
