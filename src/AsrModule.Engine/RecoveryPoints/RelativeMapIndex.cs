using System.Buffers.Binary;
using AsrModule.Engine.Errors;

namespace AsrModule.Engine.RecoveryPoints;

/// <summary>
/// The map of one disk at a rebased point relative to its parent, the nearest older point retention keeps (see
/// <see cref="AsrRecoveryPoint.IndexRelativeToParent"/>): only the blocks whose content differs from the parent's. Readers
/// build the parent's map (through its own chain) and overlay this one. An entry either reads stored data (as a full
/// map's record: the extent stays bound to the sequence that stored it) or is a zero run (blocks that are zero here and
/// data at the parent: source sequence 0, the Zero flag, pack -1).
/// Binary layout (then sealed by MetadataSealer, under the same object name as a full map), little-endian:
/// "ARM1" | diskSize(8) | count(4) | records of <see cref="FullMapIndex.RecordSize"/> bytes in block order, as in "AFM1".
/// A module that knows only "AFM1" refuses the object (bad header) rather than read it as a full map.
/// </summary>
internal static class RelativeMapIndex
{
    private static ReadOnlySpan<byte> Magic => "ARM1"u8;
    private const int HeaderSize = 4 + 8 + 4;

    /// <summary>
    /// Entries (sorted, non-overlapping, see <see cref="RelativeMapDifference"/>) of a disk of <paramref name="diskSize"/> bytes.
    /// </summary>
    public static byte[] Encode(long diskSize, IReadOnlyList<FlattenedSegment> entries)
    {
        var buffer = new byte[HeaderSize + (long)entries.Count * FullMapIndex.RecordSize];
        Magic.CopyTo(buffer);
        BinaryPrimitives.WriteInt64LittleEndian(buffer.AsSpan(4), diskSize);
        BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(12), entries.Count);
        var span = buffer.AsSpan(HeaderSize);
        foreach (var entry in entries)
        {
            FullMapIndex.WriteSegment(span, entry);
            span = span[FullMapIndex.RecordSize..];
        }
        return buffer;
    }

    /// <summary>
    /// Decodes and checks the map: its disk size must be the manifest's, entries sorted, non-overlapping and inside the
    /// disk, a data entry inside its extent and stored by an older point or this one (<paramref name="pointSequence"/>), a
    /// zero run nothing else. The vault is untrusted: a map that broke any of these would read wrong bytes silently.
    /// </summary>
    public static FlattenedSegment[] Decode(byte[] buffer, string key, long pointSequence, long diskSize, int blockSize)
    {
        if (buffer.Length < HeaderSize || !buffer.AsSpan(0, 4).SequenceEqual(Magic))
            throw Corrupt(key, "bad header");
        long statedSize = BinaryPrimitives.ReadInt64LittleEndian(buffer.AsSpan(4));
        if (statedSize != diskSize)
            throw Corrupt(key, $"it is of a disk of {statedSize} bytes, the point's disk has {diskSize}");
        int count = BinaryPrimitives.ReadInt32LittleEndian(buffer.AsSpan(12));
        if (count < 0 || buffer.Length != HeaderSize + (long)count * FullMapIndex.RecordSize)
            throw Corrupt(key, "wrong length");
        long diskBlocks = (diskSize + blockSize - 1) / blockSize;
        var entries = new FlattenedSegment[count];
        ReadOnlySpan<byte> span = buffer.AsSpan(HeaderSize);
        long previousEnd = 0;
        for (int i = 0; i < count; i++)
        {
            var entry = FullMapIndex.ReadSegment(span);
            bool valid = entry.IsZeroRun
                ? entry.BlockCount > 0 && entry.Skip == 0 && entry.Extent.Sequence == 0 && entry.Extent.Record.Flags == ExtentFlags.Zero
                : FullMapIndex.IsWithinItsExtent(entry) && entry.Extent.Sequence <= pointSequence;
            if (!valid || entry.FirstBlock < previousEnd || entry.EndBlock > diskBlocks)
                throw Corrupt(key, $"entry {i} is out of order, outside the disk or outside its extent");
            previousEnd = entry.EndBlock;
            entries[i] = entry;
            span = span[FullMapIndex.RecordSize..];
        }
        return entries;
    }

    private static AsrException Corrupt(string key, string why) =>
        new(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData, $"Relative extent map '{key}' is corrupt ({why}).", key);
}
