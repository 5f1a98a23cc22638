using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Replication.TrackerTables;

/// <summary>How a tracker holds one segment of a disk's block hashes.</summary>
internal enum TrackerSegmentKind : byte
{
    /// <summary>Every block hashes as zeros: nothing stored.</summary>
    Zero = 0,
    /// <summary>An object of its own, written by the cycle that last changed it (named by that cycle's sequence and attempt).</summary>
    Stored = 1,
    /// <summary>In the map itself: a disk of one segment.</summary>
    Inline = 2,
}

/// <summary>One segment of a tracker: where its hashes are and their digest (none for a zero segment: it is computed).</summary>
internal sealed record TrackerSegment(TrackerSegmentKind Kind, byte[]? Digest, long WriterSequence = 0, string? WriterAttempt = null, ulong[]? Hashes = null)
{
    public static readonly TrackerSegment Zero = new(TrackerSegmentKind.Zero, null);
}

/// <summary>
/// The change tracker of one disk at one point (format 3, <c>&lt;disk&gt;-&lt;token&gt;.trk</c>): the disk's geometry and,
/// per segment of <see cref="SegmentBlocks"/> blocks, whether it is zero, inline, or an object and which cycle wrote it.
/// A few bytes per 256 MiB of disk, so a cycle reads it whole and the segments one at a time.
/// <para>
/// Read from the vault it is untrusted: <see cref="Decode"/> checks the geometry against the disk it is read for, every
/// kind and length, and that a segment's writer is this point or an older one; the object key of a segment is built
/// from the item, disk, sequence and attempt (8 hex digits), never taken from the map. A segment read back must match the
/// digest the map states (<see cref="TrackerSegmentReader"/>).
/// </para>
/// </summary>
internal sealed class TrackerMap
{
    private static ReadOnlySpan<byte> Magic => "ASRTRK01"u8;

    public TrackerMap(long diskSize, int blockSize, int segmentBlocks, TrackerSegment[] segments)
    {
        DiskSize = diskSize;
        BlockSize = blockSize;
        SegmentBlocks = segmentBlocks;
        Segments = segments;
    }

    public long DiskSize { get; }
    public int BlockSize { get; }
    public int SegmentBlocks { get; }
    public TrackerSegment[] Segments { get; }
    public long BlockCount => BlockHashTable.BlockCount(DiskSize, BlockSize);
    public int BlocksIn(int segment) => HashSegments.BlocksIn(BlockCount, SegmentBlocks, segment);

    /// <summary>The digest of segment <paramref name="segment"/> (a zero segment's is computed from the seed).</summary>
    public byte[] DigestOf(int segment, ulong seed) =>
        Segments[segment].Digest ?? HashSegments.ZeroDigest(seed, DiskSize, BlockSize, SegmentBlocks, segment);

    /// <summary>The point's content digest of this disk (<see cref="HashSegments.ContentDigest(IEnumerable{byte[]})"/>).</summary>
    public string ContentDigest(ulong seed) => HashSegments.ContentDigest(Enumerable.Range(0, Segments.Length).Select(s => DigestOf(s, seed)));

    /// <summary>The vault keys of the segments stored as objects.</summary>
    public IEnumerable<string> SegmentKeys(string itemId, string diskId) =>
        Segments.Select((s, i) => (s, i)).Where(x => x.s.Kind == TrackerSegmentKind.Stored)
            .Select(x => VaultLayout.TrackerSegment(itemId, diskId, x.s.WriterSequence, x.s.WriterAttempt!, x.i));

    public byte[] Encode()
    {
        using var ms = new MemoryStream();
        Span<byte> b = stackalloc byte[8];
        ms.Write(Magic);
        BinaryPrimitives.WriteInt64LittleEndian(b, DiskSize); ms.Write(b);
        BinaryPrimitives.WriteInt32LittleEndian(b, BlockSize); ms.Write(b[..4]);
        BinaryPrimitives.WriteInt32LittleEndian(b, SegmentBlocks); ms.Write(b[..4]);
        BinaryPrimitives.WriteInt32LittleEndian(b, Segments.Length); ms.Write(b[..4]);
        foreach (var s in Segments)
        {
            ms.WriteByte((byte)s.Kind);
            switch (s.Kind)
            {
                case TrackerSegmentKind.Stored:
                    ms.Write(s.Digest);
                    BinaryPrimitives.WriteInt64LittleEndian(b, s.WriterSequence); ms.Write(b);
                    BinaryPrimitives.WriteUInt32LittleEndian(b, uint.Parse(s.WriterAttempt!, NumberStyles.HexNumber, CultureInfo.InvariantCulture)); ms.Write(b[..4]);
                    break;
                case TrackerSegmentKind.Inline:
                    ms.Write(s.Digest);
                    ms.Write(MemoryMarshal.AsBytes(s.Hashes.AsSpan()));
                    break;
            }
        }
        return ms.ToArray();
    }

    /// <summary>
    /// Decodes and checks a map read from <paramref name="key"/> for a disk of <paramref name="diskSize"/> bytes and
    /// <paramref name="blockSize"/>-byte blocks at point <paramref name="sequence"/>; <see cref="InvalidDataException"/> when anything is off.
    /// </summary>
    public static TrackerMap Decode(ReadOnlySpan<byte> data, long diskSize, int blockSize, long sequence)
    {
        const int header = 8 + 8 + 4 + 4 + 4;
        if (data.Length < header || !data[..8].SequenceEqual(Magic)) throw Invalid("it is not a tracker map");
        long size = BinaryPrimitives.ReadInt64LittleEndian(data[8..]);
        int bs = BinaryPrimitives.ReadInt32LittleEndian(data[16..]);
        int segmentBlocks = BinaryPrimitives.ReadInt32LittleEndian(data[20..]);
        int count = BinaryPrimitives.ReadInt32LittleEndian(data[24..]);
        if (size != diskSize || bs != blockSize)
            throw Invalid($"it describes a disk of {size:N0} bytes in {bs}-byte blocks, not {diskSize:N0} in {blockSize}");
        if (!HashSegments.IsValid(segmentBlocks)) throw Invalid($"segment size {segmentBlocks} is not a power of two from {HashSegments.MinSegmentBlocks} to {HashSegments.MaxSegmentBlocks}");
        long blockCount = BlockHashTable.BlockCount(size, bs);
        if (count != HashSegments.SegmentCount(blockCount, segmentBlocks)) throw Invalid($"it has {count} segments where the disk has {HashSegments.SegmentCount(blockCount, segmentBlocks)}");
        var segments = new TrackerSegment[count];
        int at = header;
        for (int i = 0; i < count; i++)
        {
            if (at >= data.Length) throw Invalid("it is truncated");
            var kind = (TrackerSegmentKind)data[at++];
            switch (kind)
            {
                case TrackerSegmentKind.Zero:
                    segments[i] = TrackerSegment.Zero;
                    break;
                case TrackerSegmentKind.Stored:
                {
                    if (data.Length - at < HashSegments.DigestLength + 12) throw Invalid("it is truncated");
                    byte[] digest = data.Slice(at, HashSegments.DigestLength).ToArray();
                    long writer = BinaryPrimitives.ReadInt64LittleEndian(data[(at + 16)..]);
                    uint attempt = BinaryPrimitives.ReadUInt32LittleEndian(data[(at + 24)..]);
                    at += 28;
                    if (writer <= 0 || writer > sequence) throw Invalid($"segment {i} names point {writer} as its writer, not point {sequence} or an older one");
                    segments[i] = new TrackerSegment(kind, digest, writer, attempt.ToString("x8", CultureInfo.InvariantCulture));
                    break;
                }
                case TrackerSegmentKind.Inline:
                {
                    int bytes = HashSegments.BlocksIn(blockCount, segmentBlocks, i) * 8;
                    if (data.Length - at < HashSegments.DigestLength + bytes) throw Invalid("it is truncated");
                    byte[] digest = data.Slice(at, HashSegments.DigestLength).ToArray();
                    var hashes = MemoryMarshal.Cast<byte, ulong>(data.Slice(at + HashSegments.DigestLength, bytes)).ToArray();
                    at += HashSegments.DigestLength + bytes;
                    if (!HashSegments.SegmentDigest(hashes).AsSpan().SequenceEqual(digest)) throw Invalid($"inline segment {i} does not match its digest");
                    segments[i] = new TrackerSegment(kind, digest, Hashes: hashes);
                    break;
                }
                default:
                    throw Invalid($"segment {i} has unknown kind {(byte)kind}");
            }
        }
        if (at != data.Length) throw Invalid("it has bytes after its last segment");
        return new TrackerMap(size, bs, segmentBlocks, segments);
    }

    private static InvalidDataException Invalid(string why) => new($"The tracker map is not valid: {why}.");
}
