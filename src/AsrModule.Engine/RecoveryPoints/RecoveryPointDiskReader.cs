using System.Buffers;
using System.Collections.Concurrent;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.RecoveryPoints;

/// <summary>
/// Random-access, read-only view of one disk as it was at a recovery point, straight out of the
/// vault (no copy first). Thread-safe: each read borrows a codec from a small pool.
/// </summary>
public sealed class RecoveryPointDiskReader : IDisposable
{
    private readonly AsrVault _vault;
    private readonly AsrRecoveryPoint _point;
    private readonly ConcurrentBag<ExtentCodec> _codecs = new();

    private RecoveryPointDiskReader(AsrVault vault, AsrRecoveryPoint point, RecoveryPointDisk disk, ExtentMap map)
    {
        _vault = vault;
        _point = point;
        Disk = disk;
        Map = map;
    }

    /// <summary>The pack that holds extent <paramref name="extentRef"/> of the map.</summary>
    internal string PackKey(int extentRef) =>
        VaultLayout.Pack(_point.ItemId, Map.Extents[extentRef].Sequence, Map.AttemptOf(extentRef), Map.Extents[extentRef].Record.PackNumber);

    public RecoveryPointDisk Disk { get; }
    public ExtentMap Map { get; }
    public long Length => Disk.SizeBytes;
    public int BlockSize => Disk.BlockSize;

    public static async Task<RecoveryPointDiskReader> OpenAsync(AsrVault vault, AsrRecoveryPoint point, string disk, CancellationToken cancellationToken)
    {
        var pointDisk = point.Disks.FirstOrDefault(d => d.DiskId == disk || string.Equals(d.Name, disk, StringComparison.OrdinalIgnoreCase))
            ?? throw new AsrException(AsrErrorIds.DiskNotFound, AsrErrorKind.ObjectNotFound,
                $"Recovery point {point} has no disk '{disk}'. Its disks: {string.Join(", ", point.Disks.Select(d => d.Name))}.", disk);
        var chain = await vault.GetPointChainAsync(point, cancellationToken).ConfigureAwait(false);
        var map = await BuildMapAsync(vault, point, pointDisk, chain, cancellationToken).ConfigureAwait(false);
        var reader = new RecoveryPointDiskReader(vault, point, pointDisk, map);
        reader.CheckExtents();
        return reader;
    }

    /// <summary>
    /// The map of <paramref name="pointDisk"/> at the last link of <paramref name="chain"/> (base first), each extent with
    /// the pack attempt of the link that brought it in (see <see cref="ExtentMap.AttemptOf"/>). A delta link overlays its
    /// index; a rebased link its map: a full map replaces what the links below built (it has no parent), a relative map
    /// overlays it (its parent's content is below).
    /// Damage is reported for <paramref name="point"/>, the point being read.
    /// </summary>
    internal static async Task<ExtentMap> BuildMapAsync(AsrVault vault, AsrRecoveryPoint point,
        RecoveryPointDisk pointDisk, IReadOnlyList<AsrRecoveryPoint> chain, CancellationToken cancellationToken)
    {
        var map = new ExtentMap();
        foreach (var link in chain)
        {
            var linkDisk = link.Disks.FirstOrDefault(d => d.DiskId == pointDisk.DiskId);
            if (linkDisk is null) continue;
            string key = link.IndexGeneration > 0
                ? VaultLayout.PointFullMap(link.ItemId, link.Sequence, pointDisk.DiskId, link.IndexGeneration)
                : VaultLayout.PointIndex(link.ItemId, link.Sequence, link.AttemptId, pointDisk.DiskId);
            try
            {
                if (link.IndexGeneration == 0)
                    map.Overlay(link.Sequence, await ReadDeltaAsync(vault, link, pointDisk.DiskId, cancellationToken).ConfigureAwait(false), linkDisk.SizeBytes, linkDisk.BlockSize, link.AttemptId);
                else if (link.IndexRelativeToParent)
                    map.OverlayRelative(await ReadRelativeMapAsync(vault, link, linkDisk, cancellationToken).ConfigureAwait(false), linkDisk.SizeBytes, linkDisk.BlockSize, link.AttemptOf);
                else
                    map.LoadFlattened(await ReadFullMapAsync(vault, link, pointDisk.DiskId, cancellationToken).ConfigureAwait(false), link.AttemptOf);
            }
            catch (Exception ex) when (IsDamagedObject(ex))
            {
                throw Unreadable(pointDisk, point, key, ex);
            }
        }
        return map;
    }

    /// <summary>
    /// Whether <paramref name="ex"/> says a vault object is missing, shorter than its index says, or does not decode:
    /// damage to report as <see cref="AsrErrorIds.VaultDataCorrupt"/> naming the disk, the point and the object.
    /// The blob store reports a missing blob (404) and a short one (416) the same way as the local store.
    /// </summary>
    internal static bool IsDamagedObject(Exception ex) =>
        ex is FileNotFoundException or DirectoryNotFoundException or EndOfStreamException or InvalidDataException
        || ex is AsrException { ErrorId: AsrErrorIds.VaultDataCorrupt };

    private static AsrException Unreadable(RecoveryPointDisk disk, AsrRecoveryPoint point, string key, Exception ex)
    {
        string what = ex switch
        {
            FileNotFoundException or DirectoryNotFoundException => "is missing",
            EndOfStreamException => "is shorter than its index says (truncated)",
            _ => $"is damaged: {ex.Message}",
        };
        return new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData,
            $"Disk '{disk.Name}' of point {point} cannot be read: vault object '{key}' {what}", key, ex);
    }

    /// <summary>
    /// Every extent the map reads must lie inside the disk of the point that stored it and fit a buffer: an index
    /// record that does not (planted or damaged) is refused before any read sizes a buffer from it.
    /// </summary>
    private void CheckExtents()
    {
        for (int i = 0; i < Map.Extents.Count; i++)
        {
            var (_, r, diskSize) = Map.Extents[i];
            long diskBlocks = (diskSize + BlockSize - 1) / BlockSize;
            if (r.FirstBlock >= diskBlocks || (long)r.BlockCount * BlockSize > MaxExtentPlainBytes
                || r.StoredLength > Compression.Zstd.CompressBound((int)Math.Min((long)r.BlockCount * BlockSize, diskSize - r.FirstBlock * BlockSize)) + Security.SealedBox.Overhead)
                throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData,
                    $"Disk '{Disk.Name}' of point {_point} cannot be read: the extent of blocks {r.FirstBlock}+{r.BlockCount} stored in " +
                    $"'{PackKey(i)}' lies outside the disk or is larger than any extent this module writes.",
                    PackKey(i));
        }
    }

    /// <summary>Largest plaintext of one stored extent a reader accepts (cycles write at most 64 blocks of at most 1 MiB).</summary>
    internal const int MaxExtentPlainBytes = 64 << 20;

    /// <summary>The extents <paramref name="point"/> itself stored for a disk (its delta index).</summary>
    private static async Task<ExtentRecord[]> ReadDeltaAsync(AsrVault vault, AsrRecoveryPoint point, string diskId, CancellationToken cancellationToken)
    {
        string key = VaultLayout.PointIndex(point.ItemId, point.Sequence, point.AttemptId, diskId);
        return ExtentIndex.Decode(await ReadSealedAsync(vault, point, key, cancellationToken).ConfigureAwait(false), key);
    }

    /// <summary>The full map of a rebased point's disk, under the generation its manifest names.</summary>
    internal static async Task<FlattenedSegment[]> ReadFullMapAsync(AsrVault vault, AsrRecoveryPoint point, string diskId, CancellationToken cancellationToken)
    {
        string key = VaultLayout.PointFullMap(point.ItemId, point.Sequence, diskId, point.IndexGeneration);
        return FullMapIndex.Decode(await ReadSealedAsync(vault, point, key, cancellationToken).ConfigureAwait(false), key);
    }

    /// <summary>The relative map of a rebased point's disk (see <see cref="AsrRecoveryPoint.IndexRelativeToParent"/>), checked against the disk.</summary>
    internal static async Task<FlattenedSegment[]> ReadRelativeMapAsync(AsrVault vault, AsrRecoveryPoint point, RecoveryPointDisk disk, CancellationToken cancellationToken)
    {
        string key = VaultLayout.PointFullMap(point.ItemId, point.Sequence, disk.DiskId, point.IndexGeneration);
        return RelativeMapIndex.Decode(await ReadSealedAsync(vault, point, key, cancellationToken).ConfigureAwait(false), key, point.Sequence, disk.SizeBytes, disk.BlockSize);
    }

    /// <summary>
    /// The map a rebased point's manifest names for a disk, full or relative as it says: what the sweep and the repack
    /// look at (a relative map's zero runs read nothing).
    /// </summary>
    internal static Task<FlattenedSegment[]> ReadRebasedMapAsync(AsrVault vault, AsrRecoveryPoint point, RecoveryPointDisk disk, CancellationToken cancellationToken) =>
        point.IndexRelativeToParent
            ? ReadRelativeMapAsync(vault, point, disk, cancellationToken)
            : ReadFullMapAsync(vault, point, disk.DiskId, cancellationToken);

    private static async Task<byte[]> ReadSealedAsync(AsrVault vault, AsrRecoveryPoint point, string key, CancellationToken cancellationToken)
    {
        var sealedIndex = await vault.Store.ReadAllAsync(key, cancellationToken).ConfigureAwait(false)
            ?? throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData, $"Extent index '{key}' of point {point} is missing.", key);
        return Security.MetadataSealer.Open(sealedIndex, vault.Key, key);
    }

    private ExtentCodec RentCodec() => _codecs.TryTake(out var c) ? c : new ExtentCodec(_vault.Key, 0);

    /// <summary>Plaintext length of a stored extent: the disk size of the point that stored it decides.</summary>
    public int PlainLength(int extentRef)
    {
        var (_, r, diskSize) = Map.Extents[extentRef];
        return (int)Math.Min((long)r.BlockCount * BlockSize, diskSize - r.FirstBlock * BlockSize);
    }

    /// <summary>Decodes one stored extent into <paramref name="plain"/> (at least its plaintext length).</summary>
    public async Task DecodeExtentAsync(int extentRef, Memory<byte> plain, CancellationToken cancellationToken)
    {
        var record = Map.Extents[extentRef].Record;
        string key = PackKey(extentRef);
        byte[] stored = ArrayPool<byte>.Shared.Rent(record.StoredLength);
        try
        {
            await _vault.Store.ReadRangeAsync(key, record.PackOffset, stored.AsMemory(0, record.StoredLength), cancellationToken).ConfigureAwait(false);
            Decode(extentRef, stored.AsSpan(0, record.StoredLength), plain.Span);
        }
        catch (Exception ex) when (IsDamagedObject(ex))
        {
            throw Unreadable(Disk, _point, key, ex);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(stored);
        }
    }

    private void Decode(int extentRef, ReadOnlySpan<byte> stored, Span<byte> plain)
    {
        var (sequence, record, _) = Map.Extents[extentRef];
        var codec = RentCodec();
        try
        {
            codec.Decode(stored, record, plain[..PlainLength(extentRef)],
                _point.ItemId, Disk.DiskId, sequence, $"disk '{Disk.Name}' blocks {record.FirstBlock}+{record.BlockCount} of point {_point}");
        }
        finally
        {
            _codecs.Add(codec);
        }
    }

    /// <summary>Largest pack range one read fetches for <see cref="ForEachExtentAsync"/>.</summary>
    internal const int MaxReadBytes = 8 << 20;

    /// <summary>Dead bytes between two live extents of a pack that a read still spans rather than splitting in two.</summary>
    internal const int MaxReadGapBytes = 64 << 10;

    /// <summary>
    /// Decodes every live stored extent once and hands its plaintext with the map segments it supplies to
    /// <paramref name="action"/>. The plaintext buffer is only valid during the call. Neighbouring extents of a
    /// pack are fetched with one ranged read of up to <see cref="MaxReadBytes"/> (a 2 GiB restore is a few
    /// hundred requests, not one per 256 KiB extent), with as many reads in flight as the store prefers.
    /// </summary>
    public Task ForEachExtentAsync(Func<IReadOnlyList<MapSegment>, byte[], CancellationToken, ValueTask> action, CancellationToken cancellationToken) =>
        ForEachExtentAsync(action, null, cancellationToken);

    /// <summary>
    /// As <see cref="ForEachExtentAsync(Func{IReadOnlyList{MapSegment}, byte[], CancellationToken, ValueTask}, CancellationToken)"/>;
    /// with <paramref name="onDamaged"/>, an extent the vault cannot give back (its pack missing or short, its bytes
    /// not decoding or authenticating) is handed to it with the <see cref="AsrErrorIds.VaultDataCorrupt"/> error
    /// instead of ending the walk: a failed ranged read hands over every extent of that read. Called under no lock,
    /// possibly in parallel.
    /// </summary>
    internal Task ForEachExtentAsync(Func<IReadOnlyList<MapSegment>, byte[], CancellationToken, ValueTask> action,
        Func<IReadOnlyList<MapSegment>, AsrException, ValueTask>? onDamaged, CancellationToken cancellationToken)
    {
        var segmentsOf = Map.Segments.GroupBy(s => s.ExtentRef).ToDictionary(g => g.Key, g => (IReadOnlyList<MapSegment>)g.ToList());
        return Parallel.ForEachAsync(PlanReads(segmentsOf.Keys), new ParallelOptions
        {
            MaxDegreeOfParallelism = Math.Max(Environment.ProcessorCount, _vault.Store.PreferredReadConcurrency),
            CancellationToken = cancellationToken,
        }, async (read, ct) =>
        {
            var first = Map.Extents[read[0]].Record;
            var last = Map.Extents[read[^1]].Record;
            string key = PackKey(read[0]);
            int span = checked((int)(last.PackOffset + last.StoredLength - first.PackOffset));
            byte[] stored = ArrayPool<byte>.Shared.Rent(span);
            try
            {
                try
                {
                    await _vault.Store.ReadRangeAsync(key, first.PackOffset, stored.AsMemory(0, span), ct).ConfigureAwait(false);
                }
                catch (Exception ex) when (IsDamagedObject(ex))
                {
                    if (onDamaged is null) throw Unreadable(Disk, _point, key, ex);
                    var error = Unreadable(Disk, _point, key, ex);
                    foreach (int extentRef in read) await onDamaged(segmentsOf[extentRef], error).ConfigureAwait(false);
                    return;
                }
                foreach (int extentRef in read)
                {
                    var record = Map.Extents[extentRef].Record;
                    byte[] plain = ArrayPool<byte>.Shared.Rent(PlainLength(extentRef));
                    try
                    {
                        // Only the read and the decode are the vault's: what the action throws (a full export disk) is its own.
                        try
                        {
                            Decode(extentRef, stored.AsSpan((int)(record.PackOffset - first.PackOffset), record.StoredLength), plain);
                        }
                        catch (Exception ex) when (IsDamagedObject(ex))
                        {
                            if (onDamaged is null) throw Unreadable(Disk, _point, key, ex);
                            await onDamaged(segmentsOf[extentRef], Unreadable(Disk, _point, key, ex)).ConfigureAwait(false);
                            continue;
                        }
                        await action(segmentsOf[extentRef], plain, ct).ConfigureAwait(false);
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(plain);
                    }
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(stored);
            }
        });
    }

    /// <summary>The live extents grouped into ranged reads: same pack, in pack order, small gaps, bounded size.</summary>
    internal List<int[]> PlanReads(IEnumerable<int> extentRefs)
    {
        var reads = new List<int[]>();
        foreach (var pack in extentRefs.GroupBy(PackKey, StringComparer.Ordinal))
        {
            var current = new List<int>();
            long start = 0, end = 0;
            foreach (int e in pack.OrderBy(e => Map.Extents[e].Record.PackOffset))
            {
                var r = Map.Extents[e].Record;
                if (current.Count > 0 && (r.PackOffset - end > MaxReadGapBytes || r.PackOffset + r.StoredLength - start > MaxReadBytes))
                {
                    reads.Add(current.ToArray());
                    current.Clear();
                }
                if (current.Count == 0) start = r.PackOffset;
                current.Add(e);
                end = r.PackOffset + r.StoredLength;
            }
            if (current.Count > 0) reads.Add(current.ToArray());
        }
        return reads;
    }

    /// <summary>Byte range of a segment inside its extent's plaintext, and its length (the disk's last block may be short).</summary>
    public (int Offset, int Length) SegmentRange(in MapSegment segment) =>
        (segment.Skip * BlockSize, (int)Math.Min((long)segment.BlockCount * BlockSize, Length - segment.FirstBlock * BlockSize));

    /// <summary>Hashes one segment's blocks into <paramref name="table"/>.</summary>
    internal void HashSegment(in MapSegment segment, byte[] plain, BlockHashTable table)
    {
        var (from, length) = SegmentRange(segment);
        for (int b = 0; b < segment.BlockCount; b++)
        {
            int off = from + b * BlockSize;
            table.Hashes[segment.FirstBlock + b] = table.Hash(plain.AsSpan(off, Math.Min(BlockSize, from + length - off)));
        }
    }

    /// <summary>The block-hash table of this disk as the vault holds it; damaged data throws <see cref="AsrErrorIds.VaultDataCorrupt"/>.</summary>
    internal async Task<BlockHashTable> ComputeBlockHashesAsync(CancellationToken cancellationToken, IProgress<double>? fractionDone = null) =>
        (await ComputeReplicaHashesAsync(tolerateDamage: false, cancellationToken, fractionDone).ConfigureAwait(false)).Table;

    /// <summary>
    /// What checksum resync compares against: the block-hash table of this disk as the vault holds it, and, with
    /// <paramref name="tolerateDamage"/>, the blocks whose stored data could not be read back (a pack missing, short,
    /// flipped): those have no trustworthy hash, so a resync must send them anew from the source (issue #12, item 5).
    /// </summary>
    internal async Task<ReplicaHashes> ComputeReplicaHashesAsync(bool tolerateDamage, CancellationToken cancellationToken, IProgress<double>? fractionDone = null)
    {
        var table = BlockHashTable.Zero(Length, BlockSize, _vault.HashSeed);
        long total = Math.Max(1, Map.Segments.Sum(s => (long)s.BlockCount)), done = 0;
        var gate = new object();
        System.Collections.BitArray? damaged = null;
        var errors = new List<AsrException>();
        await ForEachExtentAsync((segments, plain, _) =>
        {
            foreach (var seg in segments) HashSegment(seg, plain, table);
            // Extents are hashed in parallel: counting and reporting under one lock keeps the fractions in order.
            lock (gate) fractionDone?.Report((double)(done += segments.Sum(s => (long)s.BlockCount)) / total);
            return ValueTask.CompletedTask;
        }, tolerateDamage ? (segments, error) =>
        {
            lock (gate)
            {
                damaged ??= new System.Collections.BitArray(checked((int)table.Hashes.Length));
                foreach (var seg in segments) damaged.SetRange(seg.FirstBlock, seg.BlockCount);
                if (!errors.Any(e => Equals(e.Target, error.Target))) errors.Add(error);
                fractionDone?.Report((double)(done += segments.Sum(s => (long)s.BlockCount)) / total);
            }
            return ValueTask.CompletedTask;
        } : null, cancellationToken).ConfigureAwait(false);
        return new ReplicaHashes(table, damaged, errors);
    }

    /// <summary>Reads up to buffer.Length bytes at <paramref name="offset"/>; returns 0 at the end of the disk.</summary>
    public async Task<int> ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (offset >= Length) return 0;
        int total = (int)Math.Min(buffer.Length, Length - offset);
        buffer.Span[..total].Clear();
        long firstBlock = offset / BlockSize;
        long endBlock = (offset + total + BlockSize - 1) / BlockSize;
        for (int s = Map.FindSegment(firstBlock); s < Map.Segments.Count && Map.Segments[s].FirstBlock < endBlock; s++)
        {
            var seg = Map.Segments[s];
            var record = Map.Extents[seg.ExtentRef].Record;
            byte[] plain = ArrayPool<byte>.Shared.Rent(record.BlockCount * BlockSize);
            try
            {
                await DecodeExtentAsync(seg.ExtentRef, plain, cancellationToken).ConfigureAwait(false);
                long segStart = seg.FirstBlock * BlockSize, segEnd = Math.Min(seg.EndBlock * BlockSize, Length);
                long from = Math.Max(segStart, offset), to = Math.Min(segEnd, offset + total);
                if (to > from)
                    plain.AsSpan((int)(seg.Skip * (long)BlockSize + (from - segStart)), (int)(to - from))
                        .CopyTo(buffer.Span[(int)(from - offset)..]);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(plain);
            }
        }
        return total;
    }

    public void Dispose()
    {
        while (_codecs.TryTake(out var c)) c.Dispose();
    }
}

/// <summary>
/// A disk's block hashes as the vault holds it, for a checksum resync. <see cref="Damaged"/> (null when none) marks the
/// blocks whose stored data did not read back, <see cref="Errors"/> says why (one per damaged object).
/// </summary>
internal sealed record ReplicaHashes(BlockHashTable Table, System.Collections.BitArray? Damaged, IReadOnlyList<AsrException> Errors)
{
    public long DamagedBlocks
    {
        get
        {
            if (Damaged is null) return 0;
            long n = 0;
            for (int i = 0; i < Damaged.Length; i++) if (Damaged[i]) n++;
            return n;
        }
    }
}

internal static class BitArrayExtensions
{
    public static void SetRange(this System.Collections.BitArray bits, long first, int count)
    {
        for (long b = first; b < first + count && b < bits.Length; b++) bits[(int)b] = true;
    }
}
