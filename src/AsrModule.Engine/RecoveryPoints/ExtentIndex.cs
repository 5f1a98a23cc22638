using System.Buffers.Binary;
using AsrModule.Engine.Errors;

namespace AsrModule.Engine.RecoveryPoints;

/// <summary>
/// The extents one point stored for one disk, sorted by block: the point's delta over its parent.
/// Binary layout (then sealed by MetadataSealer): "AIX1" | count(4) | records (37 bytes each, little-endian).
/// </summary>
internal static class ExtentIndex
{
    private static ReadOnlySpan<byte> Magic => "AIX1"u8;

    public static byte[] Encode(IReadOnlyList<ExtentRecord> records)
    {
        var buffer = new byte[8 + records.Count * ExtentRecord.EncodedSize];
        Magic.CopyTo(buffer);
        BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(4), records.Count);
        var span = buffer.AsSpan(8);
        foreach (var r in records)
        {
            WriteRecord(span, r);
            span = span[ExtentRecord.EncodedSize..];
        }
        return buffer;
    }

    /// <summary>One record in the index's layout; the full-map index (<see cref="FullMapIndex"/>) embeds the same layout.</summary>
    internal static void WriteRecord(Span<byte> span, in ExtentRecord r)
    {
        BinaryPrimitives.WriteInt64LittleEndian(span, r.FirstBlock);
        BinaryPrimitives.WriteInt32LittleEndian(span[8..], r.BlockCount);
        span[12] = (byte)r.Flags;
        BinaryPrimitives.WriteInt32LittleEndian(span[13..], r.PackNumber);
        BinaryPrimitives.WriteInt64LittleEndian(span[17..], r.PackOffset);
        BinaryPrimitives.WriteInt32LittleEndian(span[25..], r.StoredLength);
        BinaryPrimitives.WriteUInt64LittleEndian(span[29..], r.PlainHash);
    }

    internal static ExtentRecord ReadRecord(ReadOnlySpan<byte> span) => new(
        BinaryPrimitives.ReadInt64LittleEndian(span),
        BinaryPrimitives.ReadInt32LittleEndian(span[8..]),
        (ExtentFlags)span[12],
        BinaryPrimitives.ReadInt32LittleEndian(span[13..]),
        BinaryPrimitives.ReadInt64LittleEndian(span[17..]),
        BinaryPrimitives.ReadInt32LittleEndian(span[25..]),
        BinaryPrimitives.ReadUInt64LittleEndian(span[29..]));

    public static ExtentRecord[] Decode(byte[] buffer, string key)
    {
        if (buffer.Length < 8 || !buffer.AsSpan(0, 4).SequenceEqual(Magic))
            throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData, $"Extent index '{key}' is corrupt.", key);
        int count = BinaryPrimitives.ReadInt32LittleEndian(buffer.AsSpan(4));
        if (buffer.Length != 8 + (long)count * ExtentRecord.EncodedSize)
            throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData, $"Extent index '{key}' has the wrong length.", key);
        var records = new ExtentRecord[count];
        ReadOnlySpan<byte> span = buffer.AsSpan(8);
        long previousEnd = 0;
        for (int i = 0; i < count; i++)
        {
            var r = records[i] = ReadRecord(span);
            // The map overlays a delta assuming sorted, non-overlapping extents at real pack positions; a record
            // that is not (a planted or damaged index) would read wrong bytes or ask for a negative buffer.
            // A trimmed run (Zero) stores nothing and names pack -1.
            if (r.FirstBlock < previousEnd || r.BlockCount <= 0 || r.PackOffset < 0 || r.StoredLength < 0
                || (r.PackNumber < 0 && (r.Flags & ExtentFlags.Zero) == 0))
                throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData, $"Extent index '{key}' is corrupt (record {i} is out of order or out of range).", key);
            previousEnd = r.EndBlock;
            span = span[ExtentRecord.EncodedSize..];
        }
        return records;
    }
}
