using System.Buffers.Binary;
using AsrModule.Engine.Errors;

namespace AsrModule.Engine.RecoveryPoints;

/// <summary>
/// The whole map of one disk at a rebased point (its parent was pruned by retention), so the point
/// reads without the chain it used to overlay. Extents stay where their storing point put them: the
/// codec binds an extent to the sequence that stored it, so each record names that sequence.
/// Binary layout (then sealed by MetadataSealer), little-endian:
/// "AFM1" | count(4) | records of 69 bytes, in block order:
/// sourceSequence(8) | sourceDiskSize(8) | extent record(37, as in "AIX1") | firstBlock(8) | blockCount(4) | skip(4).
/// </summary>
internal static class FullMapIndex
{
    private static ReadOnlySpan<byte> Magic => "AFM1"u8;
    public const int RecordSize = 8 + 8 + ExtentRecord.EncodedSize + 8 + 4 + 4;

    public static byte[] Encode(ExtentMap map) => Encode(map.Flatten().ToList());

    /// <summary>A map as segments (sorted, non-overlapping): what a repack writes when it moves a map's extents.</summary>
    public static byte[] Encode(IReadOnlyList<FlattenedSegment> segments)
    {
        var buffer = new byte[8 + segments.Count * RecordSize];
        Magic.CopyTo(buffer);
        BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(4), segments.Count);
        var span = buffer.AsSpan(8);
        foreach (var s in segments)
        {
            WriteSegment(span, s);
            span = span[RecordSize..];
        }
        return buffer;
    }

    /// <summary>One segment in the record layout above; the relative map (<see cref="RelativeMapIndex"/>) uses the same.</summary>
    internal static void WriteSegment(Span<byte> span, in FlattenedSegment s)
    {
        BinaryPrimitives.WriteInt64LittleEndian(span, s.Extent.Sequence);
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], s.Extent.DiskSize);
        ExtentIndex.WriteRecord(span[16..], s.Extent.Record);
        int at = 16 + ExtentRecord.EncodedSize;
        BinaryPrimitives.WriteInt64LittleEndian(span[at..], s.FirstBlock);
        BinaryPrimitives.WriteInt32LittleEndian(span[(at + 8)..], s.BlockCount);
        BinaryPrimitives.WriteInt32LittleEndian(span[(at + 12)..], s.Skip);
    }

    internal static FlattenedSegment ReadSegment(ReadOnlySpan<byte> span)
    {
        var record = ExtentIndex.ReadRecord(span[16..]);
        int at = 16 + ExtentRecord.EncodedSize;
        return new FlattenedSegment(new SourcedExtent(BinaryPrimitives.ReadInt64LittleEndian(span), record, BinaryPrimitives.ReadInt64LittleEndian(span[8..])),
            BinaryPrimitives.ReadInt64LittleEndian(span[at..]),
            BinaryPrimitives.ReadInt32LittleEndian(span[(at + 8)..]),
            BinaryPrimitives.ReadInt32LittleEndian(span[(at + 12)..]));
    }

    /// <summary>Whether a segment that reads stored data stays inside its extent and names a storing point.</summary>
    internal static bool IsWithinItsExtent(in FlattenedSegment s) =>
        s.BlockCount > 0 && s.Skip >= 0 && (long)s.Skip + s.BlockCount <= s.Extent.Record.BlockCount
        && (s.Extent.Record.Flags & ExtentFlags.Zero) == 0 && s.Extent.Sequence > 0;

    /// <summary>
    /// Decodes and checks the map's shape: a map that overlapped itself or pointed outside its extents
    /// would read wrong bytes silently, and the chain that could have rebuilt it is gone.
    /// </summary>
    public static FlattenedSegment[] Decode(byte[] buffer, string key)
    {
        if (buffer.Length < 8 || !buffer.AsSpan(0, 4).SequenceEqual(Magic))
            throw Corrupt(key, "bad header");
        int count = BinaryPrimitives.ReadInt32LittleEndian(buffer.AsSpan(4));
        if (count < 0 || buffer.Length != 8 + (long)count * RecordSize)
            throw Corrupt(key, "wrong length");
        var segments = new FlattenedSegment[count];
        ReadOnlySpan<byte> span = buffer.AsSpan(8);
        long previousEnd = 0;
        for (int i = 0; i < count; i++)
        {
            var segment = ReadSegment(span);
            if (segment.FirstBlock < previousEnd || !IsWithinItsExtent(segment))
                throw Corrupt(key, $"record {i} is out of order or outside its extent");
            previousEnd = segment.EndBlock;
            segments[i] = segment;
            span = span[RecordSize..];
        }
        return segments;
    }

    private static AsrException Corrupt(string key, string why) =>
        new(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData, $"Full extent map '{key}' is corrupt ({why}).", key);
}
