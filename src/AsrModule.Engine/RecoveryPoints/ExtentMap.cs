namespace AsrModule.Engine.RecoveryPoints;

/// <summary>
/// A stored extent together with the point that stored it (its pack and key live there) and the
/// disk size at that point (which fixes the extent's plaintext length when the disk has since been resized).
/// </summary>
public readonly record struct SourcedExtent(long Sequence, ExtentRecord Record, long DiskSize);

/// <summary>
/// Blocks [FirstBlock, FirstBlock+BlockCount) of the disk are blocks [Skip, Skip+BlockCount) of extent
/// <see cref="ExtentRef"/>. Blocks no segment covers are zero.
/// </summary>
public readonly record struct MapSegment(long FirstBlock, int BlockCount, int ExtentRef, int Skip)
{
    public long EndBlock => FirstBlock + BlockCount;
}

/// <summary>
/// One segment of a flattened map, self-contained: blocks [FirstBlock, FirstBlock+BlockCount) of the
/// disk are blocks [Skip, Skip+BlockCount) of <see cref="Extent"/>. What a rebased point's full map stores.
/// </summary>
public readonly record struct FlattenedSegment(SourcedExtent Extent, long FirstBlock, int BlockCount, int Skip)
{
    public long EndBlock => FirstBlock + BlockCount;
}

/// <summary>
/// The logically full content of one disk at one point: the chain of delta indexes from the base
/// point (or a rebased point's full map) up to this one, overlaid in order. Memory is proportional to the number of extents, not to
/// the disk size, so large disks with few changes stay cheap.
/// </summary>
public sealed class ExtentMap
{
    private readonly List<SourcedExtent> _extents = new();
    private List<MapSegment> _segments = new();

    public IReadOnlyList<SourcedExtent> Extents => _extents;
    public IReadOnlyList<MapSegment> Segments => _segments;

    /// <summary>
    /// Overlays one point's delta (sorted, non-overlapping) on the map, then clips the map to that
    /// point's disk size (a shrunk disk forgets its old tail; grown again, the tail reads as zero).
    /// </summary>
    public void Overlay(long sequence, IReadOnlyList<ExtentRecord> delta, long diskSize, int blockSize)
    {
        var result = new List<MapSegment>(_segments.Count + delta.Count);
        int i = 0;
        var base_ = _segments;
        MapSegment? carry = null; // right-hand remainder of a base segment cut by the previous delta extent
        MapSegment Next() => carry ?? base_[i];
        bool HasNext() => carry is not null || i < base_.Count;
        void Advance() { if (carry is not null) carry = null; else i++; }

        foreach (var d in delta)
        {
            while (HasNext() && Next().EndBlock <= d.FirstBlock) { result.Add(Next()); Advance(); }
            while (HasNext() && Next().FirstBlock < d.EndBlock)
            {
                var b = Next();
                Advance();
                if (b.FirstBlock < d.FirstBlock)
                    result.Add(b with { BlockCount = (int)(d.FirstBlock - b.FirstBlock) });
                if (b.EndBlock > d.EndBlock)
                {
                    int cut = (int)(d.EndBlock - b.FirstBlock);
                    carry = new MapSegment(d.EndBlock, b.BlockCount - cut, b.ExtentRef, b.Skip + cut);
                    break;
                }
            }
            if ((d.Flags & ExtentFlags.Zero) == 0)
            {
                _extents.Add(new SourcedExtent(sequence, d, diskSize));
                result.Add(new MapSegment(d.FirstBlock, d.BlockCount, _extents.Count - 1, 0));
            }
        }
        while (HasNext()) { result.Add(Next()); Advance(); }
        long blocks = (diskSize + blockSize - 1) / blockSize;
        while (result.Count > 0 && result[^1].FirstBlock >= blocks) result.RemoveAt(result.Count - 1);
        if (result.Count > 0 && result[^1].EndBlock > blocks)
            result[^1] = result[^1] with { BlockCount = (int)(blocks - result[^1].FirstBlock) };
        _segments = result;
    }

    /// <summary>The map as self-contained segments, in block order: what a rebase writes as a full map.</summary>
    public IEnumerable<FlattenedSegment> Flatten() =>
        _segments.Select(s => new FlattenedSegment(_extents[s.ExtentRef], s.FirstBlock, s.BlockCount, s.Skip));

    /// <summary>
    /// Replaces the map with a flattened one (sorted, non-overlapping: see FullMapIndex). A rebased
    /// point has no parent, so this is always the first link of a chain; later links overlay it.
    /// </summary>
    public void LoadFlattened(IReadOnlyList<FlattenedSegment> segments)
    {
        _extents.Clear();
        // Several segments may cut the same stored extent; one ExtentRef each keeps exports decoding it once.
        var refs = new Dictionary<(long Sequence, int Pack, long Offset), int>();
        var result = new List<MapSegment>(segments.Count);
        foreach (var s in segments)
        {
            var key = (s.Extent.Sequence, s.Extent.Record.PackNumber, s.Extent.Record.PackOffset);
            if (!refs.TryGetValue(key, out int extentRef))
            {
                _extents.Add(s.Extent);
                refs[key] = extentRef = _extents.Count - 1;
            }
            result.Add(new MapSegment(s.FirstBlock, s.BlockCount, extentRef, s.Skip));
        }
        _segments = result;
    }

    /// <summary>Index of the first segment that ends after <paramref name="block"/>.</summary>
    public int FindSegment(long block)
    {
        int lo = 0, hi = _segments.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_segments[mid].EndBlock <= block) lo = mid + 1; else hi = mid;
        }
        return lo;
    }
}
