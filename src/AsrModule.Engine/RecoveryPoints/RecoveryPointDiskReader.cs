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

    public RecoveryPointDisk Disk { get; }
    public ExtentMap Map { get; }
    public long Length => Disk.SizeBytes;
    public int BlockSize => Disk.BlockSize;

    public static async Task<RecoveryPointDiskReader> OpenAsync(AsrVault vault, AsrRecoveryPoint point, string disk, CancellationToken cancellationToken)
    {
        var pointDisk = point.Disks.FirstOrDefault(d => d.DiskId == disk || string.Equals(d.Name, disk, StringComparison.OrdinalIgnoreCase))
            ?? throw new AsrException(AsrErrorIds.DiskNotFound, AsrErrorKind.ObjectNotFound,
                $"Recovery point {point} has no disk '{disk}'. Its disks: {string.Join(", ", point.Disks.Select(d => d.Name))}.", disk);
        var map = new ExtentMap();
        foreach (var link in await vault.GetPointChainAsync(point, cancellationToken).ConfigureAwait(false))
        {
            var linkDisk = link.Disks.FirstOrDefault(d => d.DiskId == pointDisk.DiskId);
            if (linkDisk is null) continue;
            // A rebased link has no parent, so it is the chain's base: its full map replaces the (empty) map.
            if (link.IndexGeneration > 0)
                map.LoadFlattened(await ReadFullMapAsync(vault, link, pointDisk.DiskId, cancellationToken).ConfigureAwait(false));
            else
                map.Overlay(link.Sequence, await ReadDeltaAsync(vault, link, pointDisk.DiskId, cancellationToken).ConfigureAwait(false), linkDisk.SizeBytes, linkDisk.BlockSize);
        }
        return new RecoveryPointDiskReader(vault, point, pointDisk, map);
    }

    /// <summary>The extents <paramref name="point"/> itself stored for a disk (its delta index).</summary>
    private static async Task<ExtentRecord[]> ReadDeltaAsync(AsrVault vault, AsrRecoveryPoint point, string diskId, CancellationToken cancellationToken)
    {
        string key = VaultLayout.PointIndex(point.ItemId, point.Sequence, diskId);
        return ExtentIndex.Decode(await ReadSealedAsync(vault, point, key, cancellationToken).ConfigureAwait(false), key);
    }

    /// <summary>The full map of a rebased point's disk, under the generation its manifest names.</summary>
    internal static async Task<FlattenedSegment[]> ReadFullMapAsync(AsrVault vault, AsrRecoveryPoint point, string diskId, CancellationToken cancellationToken)
    {
        string key = VaultLayout.PointFullMap(point.ItemId, point.Sequence, diskId, point.IndexGeneration);
        return FullMapIndex.Decode(await ReadSealedAsync(vault, point, key, cancellationToken).ConfigureAwait(false), key);
    }

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
        var (sequence, record, _) = Map.Extents[extentRef];
        string packKey = VaultLayout.Pack(_point.ItemId, sequence, record.PackNumber);
        byte[] stored = ArrayPool<byte>.Shared.Rent(record.StoredLength);
        var codec = RentCodec();
        try
        {
            await _vault.Store.ReadRangeAsync(packKey, record.PackOffset, stored.AsMemory(0, record.StoredLength), cancellationToken).ConfigureAwait(false);
            codec.Decode(stored.AsSpan(0, record.StoredLength), record, plain.Span[..PlainLength(extentRef)],
                _point.ItemId, Disk.DiskId, sequence, $"disk '{Disk.Name}' blocks {record.FirstBlock}+{record.BlockCount} of point {_point}");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(stored);
            _codecs.Add(codec);
        }
    }

    /// <summary>
    /// Decodes every live stored extent once, in parallel, and hands its plaintext with the map
    /// segments it supplies to <paramref name="action"/>. The plaintext buffer is only valid during the call.
    /// </summary>
    public Task ForEachExtentAsync(Func<IReadOnlyList<MapSegment>, byte[], CancellationToken, ValueTask> action, CancellationToken cancellationToken)
    {
        var byExtent = Map.Segments.GroupBy(s => s.ExtentRef).Select(g => (g.Key, Segments: (IReadOnlyList<MapSegment>)g.ToList())).ToList();
        return Parallel.ForEachAsync(byExtent, new ParallelOptions
        {
            MaxDegreeOfParallelism = Environment.ProcessorCount,
            CancellationToken = cancellationToken,
        }, async (group, ct) =>
        {
            byte[] plain = ArrayPool<byte>.Shared.Rent(PlainLength(group.Key));
            try
            {
                await DecodeExtentAsync(group.Key, plain, ct).ConfigureAwait(false);
                await action(group.Segments, plain, ct).ConfigureAwait(false);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(plain);
            }
        });
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

    /// <summary>The block-hash table of this disk as the vault holds it: what checksum resync compares against.</summary>
    internal async Task<BlockHashTable> ComputeBlockHashesAsync(CancellationToken cancellationToken, IProgress<double>? fractionDone = null)
    {
        var table = BlockHashTable.Zero(Length, BlockSize, _vault.HashSeed);
        long total = Math.Max(1, Map.Segments.Sum(s => (long)s.BlockCount)), done = 0;
        await ForEachExtentAsync((segments, plain, _) =>
        {
            foreach (var seg in segments) HashSegment(seg, plain, table);
            fractionDone?.Report((double)Interlocked.Add(ref done, segments.Sum(s => (long)s.BlockCount)) / total);
            return ValueTask.CompletedTask;
        }, cancellationToken).ConfigureAwait(false);
        return table;
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
