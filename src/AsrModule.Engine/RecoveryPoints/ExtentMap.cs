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

    /// <summary>A relative map's entry for blocks that are zero at its point (data at the point it is relative to).</summary>
    public bool IsZeroRun => (Extent.Record.Flags & ExtentFlags.Zero) != 0;

    public static FlattenedSegment ZeroRun(long firstBlock, int blockCount) =>
        new(new SourcedExtent(0, new ExtentRecord(firstBlock, blockCount, ExtentFlags.Zero, -1, 0, 0, 0), 0), firstBlock, blockCount, 0);
}

/// <summary>
/// The logically full content of one disk at one point: the chain of delta indexes from the base
/// point (or a rebased point's full map) up to this one, overlaid in order. Memory is proportional to the number of extents, not to
/// the disk size, so large disks with few changes stay cheap.
/// </summary>
public sealed class ExtentMap
{
    private readonly List<SourcedExtent> _extents = new();
    /// <summary>Per extent, the attempt id in its pack's name, as the chain link that brought it in knows it.</summary>
    private readonly List<string?> _attempts = new();
    private List<MapSegment> _segments = new();

    public IReadOnlyList<SourcedExtent> Extents => _extents;
    public IReadOnlyList<MapSegment> Segments => _segments;

    /// <summary>
    /// The attempt id of the pack that holds extent <paramref name="extentRef"/>. Kept per extent, not per sequence: two
    /// links of one chain may name one pruned sequence under two attempts while a repack switches them one by one.
    /// </summary>
    public string? AttemptOf(int extentRef) => _attempts[extentRef];

    /// <summary>
    /// Overlays one point's delta (sorted, non-overlapping) on the map, then clips the map to that
    /// point's disk size (a shrunk disk forgets its old tail; grown again, the tail reads as zero).
    /// </summary>
    public void Overlay(long sequence, IReadOnlyList<ExtentRecord> delta, long diskSize, int blockSize, string? attempt = null) =>
        Replace(delta.Count, k => (delta[k].FirstBlock, delta[k].EndBlock), k => (delta[k].Flags & ExtentFlags.Zero) != 0
            ? null
            : new MapSegment(delta[k].FirstBlock, delta[k].BlockCount, Add(new SourcedExtent(sequence, delta[k], diskSize), attempt), 0),
            diskSize, blockSize);

    /// <summary>
    /// Overlays a relative map (see <see cref="RelativeMapIndex"/>): each entry replaces what the map held in its blocks,
    /// a zero run with nothing; then clips the map to <paramref name="diskSize"/>, the point's disk size.
    /// </summary>
    public void OverlayRelative(IReadOnlyList<FlattenedSegment> entries, long diskSize, int blockSize, Func<long, string?> attemptOf)
    {
        var refs = ExtentRefs();
        Replace(entries.Count, k => (entries[k].FirstBlock, entries[k].EndBlock), k => entries[k].IsZeroRun
            ? null
            : new MapSegment(entries[k].FirstBlock, entries[k].BlockCount, RefOf(entries[k].Extent, attemptOf(entries[k].Extent.Sequence), refs), entries[k].Skip),
            diskSize, blockSize);
    }

    /// <summary>
    /// Replaces the blocks of <paramref name="count"/> sorted, non-overlapping ranges with what
    /// <paramref name="replacement"/> gives (null: zero), then clips the map to the disk's blocks.
    /// </summary>
    private void Replace(int count, Func<int, (long FirstBlock, long EndBlock)> range, Func<int, MapSegment?> replacement, long diskSize, int blockSize)
    {
        var result = new List<MapSegment>(_segments.Count + count);
        int i = 0;
        var base_ = _segments;
        MapSegment? carry = null; // right-hand remainder of a base segment cut by the previous range
        MapSegment Next() => carry ?? base_[i];
        bool HasNext() => carry is not null || i < base_.Count;
        void Advance() { if (carry is not null) carry = null; else i++; }

        for (int k = 0; k < count; k++)
        {
            var (first, end) = range(k);
            while (HasNext() && Next().EndBlock <= first) { result.Add(Next()); Advance(); }
            while (HasNext() && Next().FirstBlock < end)
            {
                var b = Next();
                Advance();
                if (b.FirstBlock < first)
                    result.Add(b with { BlockCount = (int)(first - b.FirstBlock) });
                if (b.EndBlock > end)
                {
                    int cut = (int)(end - b.FirstBlock);
                    carry = new MapSegment(end, b.BlockCount - cut, b.ExtentRef, b.Skip + cut);
                    break;
                }
            }
            if (replacement(k) is { } segment) result.Add(segment);
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
    /// Replaces the map with a flattened one (sorted, non-overlapping: see FullMapIndex). A point with a
    /// full map has no parent, so this is always the first link of a chain; later links overlay it.
    /// </summary>
    public void LoadFlattened(IReadOnlyList<FlattenedSegment> segments, Func<long, string?>? attemptOf = null)
    {
        _extents.Clear();
        _attempts.Clear();
        var refs = ExtentRefs();
        var result = new List<MapSegment>(segments.Count);
        foreach (var s in segments)
            result.Add(new MapSegment(s.FirstBlock, s.BlockCount, RefOf(s.Extent, attemptOf?.Invoke(s.Extent.Sequence), refs), s.Skip));
        _segments = result;
    }

    private int Add(SourcedExtent extent, string? attempt)
    {
        _extents.Add(extent);
        _attempts.Add(attempt);
        return _extents.Count - 1;
    }

    /// <summary>
    /// The map's extents, so that segments cutting one stored extent share its ref. Keyed by the whole record, not its
    /// place alone: a planted map naming one place with two records of other lengths gets two refs, each checked as it is.
    /// </summary>
    private Dictionary<(SourcedExtent Extent, string? Attempt), int> ExtentRefs()
    {
        var refs = new Dictionary<(SourcedExtent, string?), int>();
        for (int e = 0; e < _extents.Count; e++) refs.TryAdd((_extents[e], _attempts[e]), e);
        return refs;
    }

    // Several segments may cut the same stored extent; one ExtentRef each keeps exports decoding it once.
    private int RefOf(SourcedExtent extent, string? attempt, Dictionary<(SourcedExtent Extent, string? Attempt), int> refs)
    {
        if (!refs.TryGetValue((extent, attempt), out int extentRef)) refs[(extent, attempt)] = extentRef = Add(extent, attempt);
        return extentRef;
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
