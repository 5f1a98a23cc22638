using System.Collections.Concurrent;
using System.IO.Hashing;
using System.Runtime.InteropServices;

namespace AsrModule.Engine.Replication;

/// <summary>
/// One XxHash3-64 per block of a disk: the change tracker's memory of what the vault holds, and
/// the material of a point's content digest. 8 bytes per 4 KiB block (4 MiB per 2 GiB of disk).
/// The hash is keyed with the vault's secret seed, so a guest cannot craft a block whose change goes
/// unnoticed; by chance a change is missed with p ≈ 2^-64 per changed block.
/// </summary>
internal sealed class BlockHashTable
{
    public BlockHashTable(long diskSize, int blockSize, ulong seed)
    {
        DiskSize = diskSize;
        BlockSize = blockSize;
        Seed = seed;
        Hashes = new ulong[BlockCount(diskSize, blockSize)];
    }

    private BlockHashTable(long diskSize, int blockSize, ulong seed, ulong[] hashes)
    {
        DiskSize = diskSize;
        BlockSize = blockSize;
        Seed = seed;
        Hashes = hashes;
    }

    public long DiskSize { get; }
    public int BlockSize { get; }
    public ulong Seed { get; }
    public ulong[] Hashes { get; }

    public static long BlockCount(long diskSize, int blockSize) => (diskSize + blockSize - 1) / blockSize;

    public int BlockLength(long block) => (int)Math.Min(BlockSize, DiskSize - block * BlockSize);

    /// <summary>A table describing an all-zero disk: what the vault holds before initial replication.</summary>
    public static BlockHashTable Zero(long diskSize, int blockSize, ulong seed)
    {
        var t = new BlockHashTable(diskSize, blockSize, seed);
        Array.Fill(t.Hashes, t.ZeroHash(blockSize));
        if (t.Hashes.Length > 0) t.Hashes[^1] = t.ZeroHash(t.BlockLength(t.Hashes.Length - 1));
        return t;
    }

    private static readonly ConcurrentDictionary<(ulong, int), ulong> ZeroHashes = new();

    public ulong ZeroHash(int length) => ZeroHashes.GetOrAdd((Seed, length), k => XxHash3.HashToUInt64(new byte[k.Item2], (long)k.Item1));

    private OptimizedXxHash3? _hasher;

    /// <summary>The keyed hash of one block (XxHash3-64 with the vault's seed; <see cref="OptimizedXxHash3"/> says why not the library's call).</summary>
    public ulong Hash(ReadOnlySpan<byte> block) => (_hasher ??= OptimizedXxHash3.ForSeed(Seed)).Hash(block);

    /// <summary>Unkeyed integrity checksum of a stored extent's plaintext (not used for change detection).</summary>
    public static ulong Checksum(ReadOnlySpan<byte> data) => OptimizedXxHash3.Unseeded.Hash(data);

    /// <summary>XxHash128 of the table: one value that changes when any block does.</summary>
    public string Digest() => Convert.ToHexStringLower(XxHash128.Hash(MemoryMarshal.AsBytes(Hashes.AsSpan())));

    public byte[] ToBytes() => MemoryMarshal.AsBytes(Hashes.AsSpan()).ToArray();

    public static BlockHashTable FromBytes(byte[] bytes, long diskSize, int blockSize, ulong seed)
    {
        var hashes = MemoryMarshal.Cast<byte, ulong>(bytes).ToArray();
        if (hashes.Length != BlockCount(diskSize, blockSize))
            throw new InvalidDataException("Block hash table does not match the disk size.");
        return new BlockHashTable(diskSize, blockSize, seed, hashes);
    }

    /// <summary>
    /// A copy resized to a new disk size: blocks beyond the old end count as zero. The old last block
    /// is dropped too (it may be partial); the cycle resends it.
    /// </summary>
    public BlockHashTable Resized(long newSize)
    {
        var t = Zero(newSize, BlockSize, Seed);
        long common = Math.Min(Hashes.Length, t.Hashes.Length) - 1;
        if (common > 0) Array.Copy(Hashes, t.Hashes, common);
        return t;
    }
}
