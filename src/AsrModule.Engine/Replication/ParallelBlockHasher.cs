namespace AsrModule.Engine.Replication;

/// <summary>
/// Hashes the blocks of one read chunk into an array of block hashes (a tracker segment), split across the cores. Every block's
/// hash depends on that block alone and lands in its own slot of the table, so the parts are independent and the
/// result is the same as hashing the blocks one after another; what the scanner does with the hashes (compare,
/// gather runs, send) stays on its own thread, in block order.
/// </summary>
internal static class ParallelBlockHasher
{
    /// <summary>Blocks per part (512 KiB of 4 KiB blocks): small enough that the cores share a 4 MiB chunk evenly.</summary>
    internal const int PartBlocks = 128;

    /// <summary>
    /// Hashes <paramref name="blocks"/> blocks, the first <paramref name="bytes"/> of <paramref name="buffer"/>, with
    /// <paramref name="hashing"/>'s keyed hash into <paramref name="into"/> from index <paramref name="at"/>.
    /// </summary>
    public static void Hash(BlockHashTable hashing, ulong[] into, int at, byte[] buffer, int bytes, int blocks)
    {
        // A short read (a delta's small changed range) is hashed at once: splitting it would cost more than it saves.
        if (blocks <= PartBlocks || Environment.ProcessorCount == 1)
        {
            HashRange(hashing, into, at, buffer, bytes, 0, blocks);
            return;
        }
        // The calling thread takes parts too: when the pool's threads are busy (the pipeline compressing), it hashes
        // the whole chunk itself rather than wait for one.
        int parts = (blocks + PartBlocks - 1) / PartBlocks;
        Parallel.For(0, parts, p => HashRange(hashing, into, at, buffer, bytes, p * PartBlocks, Math.Min(blocks, (p + 1) * PartBlocks)));
    }

    private static void HashRange(BlockHashTable hashing, ulong[] into, int at, byte[] buffer, int bytes, int from, int to)
    {
        int bs = hashing.BlockSize;
        for (int b = from; b < to; b++)
            into[at + b] = hashing.Hash(buffer.AsSpan(b * bs, Math.Min(bs, bytes - b * bs)));
    }
}
