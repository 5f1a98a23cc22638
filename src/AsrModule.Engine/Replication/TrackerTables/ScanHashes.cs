namespace AsrModule.Engine.Replication.TrackerTables;

/// <summary>
/// One disk's block hashes during a scan: the baseline's and the new ones, one segment at a time. The scanner walks the
/// disk in block order and enters each segment it reads or covers (<see cref="EnterAsync"/>); leaving a segment writes
/// it (or names the baseline's when nothing changed, or marks it zero); <see cref="CompleteAsync"/> carries every segment
/// the scan did not enter over from the baseline and returns the new tracker's map. Memory: two segments (1 MiB at the
/// default size) and the map, whatever the disk's size.
/// </summary>
internal sealed class ScanHashes : IAsyncDisposable
{
    private readonly TrackerBaseline _baseline;
    private readonly TrackerSegmentWriter _writer;
    private readonly TrackerSegment?[] _segments;
    private ulong[] _base, _spare;
    private readonly ulong[] _new;
    /// <summary>The segments the scan will enter, in order (<see cref="Plan"/>), and how far it got.</summary>
    private IReadOnlyList<int> _plan = [];
    private int _planned;
    /// <summary>The next planned segment's baseline, read from the vault into <see cref="_spare"/> while the scan works on the current one.</summary>
    private (int Segment, Task Load)? _prefetch;
    private int _current = -1;
    private int _length;
    private bool _zeroed;

    public ScanHashes(TrackerBaseline baseline, TrackerSegmentWriter writer)
    {
        _baseline = baseline;
        _writer = writer;
        _segments = new TrackerSegment?[baseline.SegmentCount];
        int buffer = (int)Math.Min(baseline.SegmentBlocks, Math.Max(1, baseline.BlockCount));
        _base = new ulong[buffer];
        _spare = new ulong[buffer];
        _new = new ulong[buffer];
        Hashing = new BlockHashTable(0, baseline.BlockSize, baseline.Seed);
    }

    public long DiskSize => _baseline.DiskSize;
    public int BlockSize => _baseline.BlockSize;
    public long BlockCount => _baseline.BlockCount;
    public int SegmentBlocks => _baseline.SegmentBlocks;
    /// <summary>The hash function and zero hashes (keyed with the vault's seed).</summary>
    public BlockHashTable Hashing { get; }
    /// <summary>The first block of the current segment.</summary>
    public long SegmentStart { get; private set; }
    public long SegmentEnd => SegmentStart + _length;
    /// <summary>Segments written as objects so far.</summary>
    public int SegmentsWritten => _writer.Written;

    public int SegmentOf(long block) => (int)(block / SegmentBlocks);

    /// <summary>
    /// The segments the scan will enter, in increasing order: each one's baseline is read from the vault while the scan
    /// works on the one before (a full-scan delta of a terabyte enters 4,096; one round trip each would stall the reads).
    /// </summary>
    public void Plan(IReadOnlyList<int> segments) => _plan = segments;

    /// <summary>
    /// Makes segment <paramref name="segment"/> current: the one before is finished (written, reused or zero) and this
    /// one's baseline read; the new hashes start as the baseline's (a delta changes only the blocks it reads).
    /// Segments are entered in increasing order.
    /// </summary>
    public async ValueTask EnterAsync(int segment, CancellationToken ct)
    {
        if (segment == _current) return;
        if (segment < _current) throw new InvalidOperationException($"Segment {segment} entered after segment {_current}.");
        await LoadAsync(segment, ct).ConfigureAwait(false);
    }

    private async ValueTask LoadAsync(int segment, CancellationToken ct)
    {
        await FinishAsync(ct).ConfigureAwait(false);
        _current = segment;
        SegmentStart = (long)segment * SegmentBlocks;
        _length = HashSegments.BlocksIn(BlockCount, SegmentBlocks, segment);
        _zeroed = false;
        if (_prefetch is { } ahead)
        {
            _prefetch = null;
            if (ahead.Segment == segment)
            {
                await ahead.Load.ConfigureAwait(false);
                (_base, _spare) = (_spare, _base);
            }
            else
            {
                await Observe(ahead.Load).ConfigureAwait(false); // not needed after all; its buffer is free again
                await _baseline.LoadAsync(segment, _base.AsMemory(0, _length), ct).ConfigureAwait(false);
            }
        }
        else
        {
            await _baseline.LoadAsync(segment, _base.AsMemory(0, _length), ct).ConfigureAwait(false);
        }
        _base.AsSpan(0, _length).CopyTo(_new);
        while (_planned < _plan.Count && _plan[_planned] <= segment) _planned++;
        if (_planned < _plan.Count && _baseline.ReadsVault(_plan[_planned]))
        {
            int next = _plan[_planned];
            _prefetch = (next, _baseline.LoadAsync(next, _spare.AsMemory(0, HashSegments.BlocksIn(BlockCount, SegmentBlocks, next)), ct).AsTask());
        }
    }

    /// <summary>Waits for a read whose result is not used; its failure is not this scan's (the segment was not needed).</summary>
    private static async Task Observe(Task load)
    {
        try { await load.ConfigureAwait(false); }
        catch { /* not needed */ }
    }

    public ulong Baseline(long block) => _base[block - SegmentStart];
    public ulong New(long block) => _new[block - SegmentStart];
    public void SetNew(long block, ulong hash) => _new[block - SegmentStart] = hash;
    /// <summary>The new hashes of the current segment, for a hasher to fill from <see cref="IndexOf"/>.</summary>
    public ulong[] NewHashes => _new;
    public int IndexOf(long block) => (int)(block - SegmentStart);

    /// <summary>
    /// Whether the whole current segment may be skipped as zero: the baseline says it is zero without being compared
    /// (a hole over a zero segment: nothing changed, nothing to send).
    /// </summary>
    public bool BaselineSegmentIsZero => _current >= 0 && _baseline.IsZero(_current);

    /// <summary>The whole current segment is zero (a hole the scan did not read); its hashes need not be set one by one.</summary>
    public void MarkSegmentZero() => _zeroed = true;

    private async ValueTask FinishAsync(CancellationToken ct)
    {
        if (_current < 0 || _segments[_current] is not null) return;
        if (_zeroed || HashSegments.IsZero(_new.AsSpan(0, _length), _baseline.Seed, DiskSize, BlockSize, SegmentBlocks, _current))
            _segments[_current] = TrackerSegment.Zero;
        else if (_baseline.Reusable(_current) is { } same && _new.AsSpan(0, _length).SequenceEqual(_base.AsSpan(0, _length)))
            _segments[_current] = same;
        else if (_segments.Length == 1)
            _segments[_current] = new TrackerSegment(TrackerSegmentKind.Inline, HashSegments.SegmentDigest(_new.AsSpan(0, _length)), Hashes: _new.AsSpan(0, _length).ToArray());
        else
        {
            var segment = new TrackerSegment(TrackerSegmentKind.Stored, HashSegments.SegmentDigest(_new.AsSpan(0, _length)), _writer.Sequence, _writer.AttemptId);
            await _writer.WriteAsync(_current, _new, _length, ct).ConfigureAwait(false);
            _segments[_current] = segment;
        }
    }

    /// <summary>Finishes the scan: the last segment, every segment not entered (carried over, or copied when the baseline has no stored form), the writes.</summary>
    public async Task<TrackerMap> CompleteAsync(CancellationToken ct)
    {
        await FinishAsync(ct).ConfigureAwait(false);
        for (int s = 0; s < _segments.Length; s++)
        {
            if (_segments[s] is not null) continue;
            if (_baseline.Reusable(s) is { } same) { _segments[s] = same; continue; }
            await LoadAsync(s, ct).ConfigureAwait(false);
            await FinishAsync(ct).ConfigureAwait(false);
        }
        await _writer.FlushAsync().ConfigureAwait(false);
        return new TrackerMap(DiskSize, BlockSize, SegmentBlocks, _segments.Select(s => s!).ToArray());
    }

    public async ValueTask DisposeAsync()
    {
        if (_prefetch is { } ahead) await Observe(ahead.Load).ConfigureAwait(false);
        _prefetch = null;
        await _writer.DisposeAsync().ConfigureAwait(false);
    }
}
