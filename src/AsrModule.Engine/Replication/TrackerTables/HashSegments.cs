using System.Collections.Concurrent;
using System.IO.Hashing;
using System.Runtime.InteropServices;

namespace AsrModule.Engine.Replication.TrackerTables;

/// <summary>
/// A disk's block hashes cut into segments of a fixed number of blocks (65,536: 256 MiB of 4 KiB blocks, 512 KiB of
/// hashes). A cycle holds one segment of the previous table and one of the new at a time, the vault stores each
/// segment as an object of its own (a segment that did not change is not written again), and a point's content digest
/// is built from the segments' digests, so a disk of any size is digested without its whole table in one place.
/// </summary>
internal static class HashSegments
{
    public const int DefaultSegmentBlocks = 65_536;
    public const int MinSegmentBlocks = 8;
    public const int MaxSegmentBlocks = 1 << 24;
    public const int DigestLength = 16;

    private static readonly AsyncLocal<int?> SegmentBlocksOverride = new();

    /// <summary>The segment size new trackers are written with (tests use small ones to cut small disks into several).</summary>
    public static int SegmentBlocks => SegmentBlocksOverride.Value ?? DefaultSegmentBlocks;

    /// <summary>Writes new trackers with <paramref name="blocks"/> per segment in this async flow (tests).</summary>
    internal static void UseSegmentBlocks(int? blocks)
    {
        if (blocks is { } b && !IsValid(b)) throw new ArgumentOutOfRangeException(nameof(blocks));
        SegmentBlocksOverride.Value = blocks;
    }

    /// <summary>A power of two from <see cref="MinSegmentBlocks"/> to <see cref="MaxSegmentBlocks"/>.</summary>
    public static bool IsValid(int segmentBlocks) =>
        segmentBlocks is >= MinSegmentBlocks and <= MaxSegmentBlocks && (segmentBlocks & (segmentBlocks - 1)) == 0;

    public static int SegmentCount(long blockCount, int segmentBlocks) => checked((int)((blockCount + segmentBlocks - 1) / segmentBlocks));

    /// <summary>The blocks of segment <paramref name="segment"/> (the last one may be short).</summary>
    public static int BlocksIn(long blockCount, int segmentBlocks, int segment) =>
        (int)Math.Min(segmentBlocks, blockCount - (long)segment * segmentBlocks);

    /// <summary>XxHash128 of a segment's hashes (16 bytes).</summary>
    public static byte[] SegmentDigest(ReadOnlySpan<ulong> hashes) => XxHash128.Hash(MemoryMarshal.AsBytes(hashes));

    /// <summary>A point's content digest from its segments' digests, in order.</summary>
    public static string ContentDigest(IEnumerable<byte[]> segmentDigests)
    {
        var digest = new XxHash128();
        foreach (var d in segmentDigests) digest.Append(d);
        return Convert.ToHexStringLower(digest.GetCurrentHash());
    }

    /// <summary>The content digest of a whole table, as a point whose disk was digested by segments of <paramref name="segmentBlocks"/> states it.</summary>
    public static string ContentDigest(BlockHashTable table, int segmentBlocks)
    {
        int count = SegmentCount(table.Hashes.LongLength, segmentBlocks);
        return ContentDigest(Enumerable.Range(0, count).Select(s =>
            SegmentDigest(table.Hashes.AsSpan((int)((long)s * segmentBlocks), BlocksIn(table.Hashes.LongLength, segmentBlocks, s)))));
    }

    /// <summary>
    /// The digest the point states for <paramref name="disk"/>, computed over <paramref name="table"/> by the same scheme:
    /// by segments when the point says so, else over the whole table (points written before segments).
    /// </summary>
    public static string DigestOf(BlockHashTable table, RecoveryPoints.RecoveryPointDisk disk) =>
        disk.DigestSegmentBlocks is { } s ? ContentDigest(table, s) : table.Digest();

    /// <summary>Fills <paramref name="into"/> with what segment <paramref name="segment"/> of an all-zero disk holds: each block's zero hash (the disk's last block may be short).</summary>
    public static void FillZero(Span<ulong> into, ulong seed, long diskSize, int blockSize, int segmentBlocks, int segment)
    {
        var zero = new BlockHashTable(0, blockSize, seed);
        into.Fill(zero.ZeroHash(blockSize));
        into[^1] = zero.ZeroHash(LastBlockLength(diskSize, blockSize, segmentBlocks, segment));
    }

    /// <summary>Whether <paramref name="hashes"/> (segment <paramref name="segment"/>) are those of zero blocks only.</summary>
    public static bool IsZero(ReadOnlySpan<ulong> hashes, ulong seed, long diskSize, int blockSize, int segmentBlocks, int segment)
    {
        var zero = new BlockHashTable(0, blockSize, seed);
        return hashes[..^1].IndexOfAnyExcept(zero.ZeroHash(blockSize)) < 0
            && hashes[^1] == zero.ZeroHash(LastBlockLength(diskSize, blockSize, segmentBlocks, segment));
    }

    private static readonly ConcurrentDictionary<(ulong Seed, int BlockSize, int Blocks, int LastLength), byte[]> ZeroDigests = new();

    /// <summary>The digest of a segment of zero blocks (cached: one per seed and shape).</summary>
    public static byte[] ZeroDigest(ulong seed, long diskSize, int blockSize, int segmentBlocks, int segment)
    {
        int blocks = BlocksIn(BlockHashTable.BlockCount(diskSize, blockSize), segmentBlocks, segment);
        return ZeroDigests.GetOrAdd((seed, blockSize, blocks, LastBlockLength(diskSize, blockSize, segmentBlocks, segment)), _ =>
        {
            var hashes = new ulong[blocks];
            FillZero(hashes, seed, diskSize, blockSize, segmentBlocks, segment);
            return SegmentDigest(hashes);
        });
    }

    /// <summary>The length of the last block of a segment: a whole block but for the disk's last one.</summary>
    private static int LastBlockLength(long diskSize, int blockSize, int segmentBlocks, int segment)
    {
        long last = (long)segment * segmentBlocks + BlocksIn(BlockHashTable.BlockCount(diskSize, blockSize), segmentBlocks, segment) - 1;
        return (int)Math.Min(blockSize, diskSize - last * blockSize);
    }
}
