using System.IO.Hashing;
using System.Runtime.InteropServices;

namespace AsrModule.Engine.Replication;

/// <summary>
/// One XxHash3-64 per block of a disk: the change tracker's memory of what the vault holds, and
/// the material of a point's content digest. 8 bytes per 4 KiB block (4 MiB per 2 GiB of disk).
/// A missed change needs a 64-bit collision on the same block (p ≈ 2^-64 per changed block).
/// </summary>
internal sealed class BlockHashTable
{
    public BlockHashTable(long diskSize, int blockSize)
    {
        DiskSize = diskSize;
        BlockSize = blockSize;
        Hashes = new ulong[BlockCount(diskSize, blockSize)];
    }

    private BlockHashTable(long diskSize, int blockSize, ulong[] hashes)
    {
        DiskSize = diskSize;
        BlockSize = blockSize;
        Hashes = hashes;
    }

    public long DiskSize { get; }
    public int BlockSize { get; }
    public ulong[] Hashes { get; }

    public static long BlockCount(long diskSize, int blockSize) => (diskSize + blockSize - 1) / blockSize;

    public int BlockLength(long block) => (int)Math.Min(BlockSize, DiskSize - block * BlockSize);

    /// <summary>A table describing an all-zero disk: what the vault holds before initial replication.</summary>
    public static BlockHashTable Zero(long diskSize, int blockSize)
    {
        var t = new BlockHashTable(diskSize, blockSize);
        Array.Fill(t.Hashes, ZeroHash(blockSize));
        if (t.Hashes.Length > 0) t.Hashes[^1] = ZeroHash(t.BlockLength(t.Hashes.Length - 1));
        return t;
    }

    private static readonly Dictionary<int, ulong> ZeroHashes = new();

    public static ulong ZeroHash(int length)
    {
        lock (ZeroHashes)
        {
            if (!ZeroHashes.TryGetValue(length, out var h))
                ZeroHashes[length] = h = XxHash3.HashToUInt64(new byte[length]);
            return h;
        }
    }

    public static ulong Hash(ReadOnlySpan<byte> block) => XxHash3.HashToUInt64(block);

    /// <summary>XxHash128 of the table: one value that changes when any block does.</summary>
    public string Digest() => Convert.ToHexStringLower(XxHash128.Hash(MemoryMarshal.AsBytes(Hashes.AsSpan())));

    public byte[] ToBytes() => MemoryMarshal.AsBytes(Hashes.AsSpan()).ToArray();

    public static BlockHashTable FromBytes(byte[] bytes, long diskSize, int blockSize)
    {
        var hashes = MemoryMarshal.Cast<byte, ulong>(bytes).ToArray();
        if (hashes.Length != BlockCount(diskSize, blockSize))
            throw new InvalidDataException("Block hash table does not match the disk size.");
        return new BlockHashTable(diskSize, blockSize, hashes);
    }

    /// <summary>A copy resized to a new disk size: blocks beyond the old end count as zero.</summary>
    public BlockHashTable Resized(long newSize)
    {
        var t = Zero(newSize, BlockSize);
        long common = Math.Min(Hashes.Length, t.Hashes.Length) - 1; // the old last block may be partial
        if (common > 0) Array.Copy(Hashes, t.Hashes, common);
        return t;
    }
}
