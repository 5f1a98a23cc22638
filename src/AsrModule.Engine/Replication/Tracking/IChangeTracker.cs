using AsrModule.Engine.Items;

namespace AsrModule.Engine.Replication.Tracking;

/// <summary>A byte range of a disk that may have been written since the previous point.</summary>
public readonly record struct ByteRange(long Offset, long Length)
{
    public long End => Offset + Length;
}

/// <summary>
/// One disk of one cycle as it was at the capture instant, readable for the length of the cycle,
/// together with what the tracker knows about which parts changed since the previous point.
/// </summary>
public interface IDiskCapture : IDisposable
{
    string DiskId { get; }
    long Size { get; }

    /// <summary>
    /// Ranges that may differ from the previous point, sorted and non-overlapping; over-approximation
    /// is fine (the cycle compares block hashes), missing a write is not. Null when the tracker does
    /// not know (first cycle, lost history): the cycle then reads every block.
    /// </summary>
    IReadOnlyList<ByteRange>? ChangedRanges { get; }

    /// <summary>Why <see cref="ChangedRanges"/> is null (shown in the job's note); null when it is not.</summary>
    string? HistoryLostReason { get; }

    /// <summary>
    /// The ranges of the captured view that may hold data, sorted; the rest reads as zeros and is not read (holes of a
    /// sparse file or clone, unallocated clusters of an image). Null: every byte may hold data.
    /// </summary>
    IReadOnlyList<ByteRange>? DataRanges => null;

    /// <summary>A hint that <paramref name="length"/> bytes at <paramref name="offset"/> will be read soon (start reading them in the background); optional.</summary>
    void Prefetch(long offset, long length) { }

    /// <summary>Reads exactly <paramref name="buffer"/>.Length bytes at <paramref name="offset"/> of the captured view.</summary>
    ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken);
}

/// <summary>
/// A source of recovery-point data for one machine: how its disks are captured at one instant and
/// how the changes since the previous point are known. One implementation per kind of source
/// (hash scan of files and devices, QEMU dirty bitmaps over QMP).
/// </summary>
public interface IChangeTracker : IAsyncDisposable
{
    /// <summary>Short name shown in jobs and events ("HashScan", "QemuDirtyBitmap").</summary>
    string Kind { get; }

    /// <summary>
    /// True when <see cref="CaptureAsync"/> returns a frozen point-in-time view (the source may run
    /// on as soon as it returns); false when the cycle reads the live disks, so the source must stay
    /// quiet (freeze hooks held) until the cycle has read them.
    /// </summary>
    bool CapturesPointInTime { get; }

    /// <summary>What makes a point-in-time capture one, for the point's ConsistencyEvidence ("QEMU stopped the guest's writes for the capture").</summary>
    string CaptureEvidence { get; }

    /// <summary>
    /// Set after <see cref="CaptureAsync"/> when the capture is point-in-time per disk but not across the item's disks
    /// (they were written between their captures): what wrote. The point is then Inconsistent.
    /// </summary>
    string? CaptureInconsistency => null;

    /// <summary>The attempt ids of the latest point (null: none, or written before attempts were named) and of this cycle, for trackers that name what they keep by them.</summary>
    void UseAttempts(string? lastAttemptId, string attemptId) { }

    /// <summary>Stops the source's writes for a coordinated instant across machines (QEMU: QMP stop); no-op where not possible.</summary>
    Task PauseSourceAsync(CancellationToken cancellationToken);

    /// <summary>Lets the source run again after <see cref="PauseSourceAsync"/>. Must be safe to call when not paused.</summary>
    Task ResumeSourceAsync();

    /// <summary>
    /// Captures all the item's disks at one instant. <paramref name="nextSequence"/> is the point the
    /// capture will become; <paramref name="lastSequence"/> the latest published point (0: none).
    /// </summary>
    Task<IReadOnlyList<IDiskCapture>> CaptureAsync(AsrProtectedItem item, long lastSequence, long nextSequence, CancellationToken cancellationToken);

    /// <summary>The captured point was published: the changes up to the capture are in the vault and can be forgotten.</summary>
    Task CommitAsync(CancellationToken cancellationToken);

    /// <summary>The captured point was not published: keep its changes so the next cycle sends them (never lose a write).</summary>
    Task AbortAsync();
}
