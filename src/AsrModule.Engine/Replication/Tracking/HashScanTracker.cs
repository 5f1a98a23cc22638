using AsrModule.Engine.Items;

namespace AsrModule.Engine.Replication.Tracking;

/// <summary>
/// The tracker for sources nothing better applies to (files on a file system that does not clone, block devices,
/// images that are neither cloned nor stopped qcow2): the kernel offers no write log for them, so every cycle reads
/// the live disk (its holes skipped) and compares each 4 KiB block's keyed hash with the hash table stored with the
/// previous point. The history is that table; when it is lost the cycle falls back to a checksum resync against the
/// vault. Reads are live, so the cycle's write-fingerprint check (LiveReadCheck) decides whether the point is
/// CrashConsistent (nothing wrote during the read) or Inconsistent.
/// </summary>
public sealed class HashScanTracker : IChangeTracker
{
    private readonly List<FileDiskCapture> _open = new();

    public string Kind => "HashScan";
    public bool CapturesPointInTime => false;
    public string CaptureEvidence => "live read";

    public Task PauseSourceAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task ResumeSourceAsync() => Task.CompletedTask;

    public async Task<IReadOnlyList<IDiskCapture>> CaptureAsync(AsrProtectedItem item, long lastSequence, long nextSequence, CancellationToken cancellationToken)
    {
        var captures = new List<IDiskCapture>();
        try
        {
            foreach (var disk in item.Disks)
            {
                var source = await Sources.SourceDisks.OpenAsync(disk, cancellationToken).ConfigureAwait(false);
                // Holes found at the capture: a write into one during the read makes the point Inconsistent
                // (LiveReadCheck), and the next scan reads the block and finds its hash changed.
                var capture = new FileDiskCapture(disk.DiskId, source, dataRanges: await source.GetDataRangesAsync(cancellationToken).ConfigureAwait(false));
                _open.Add(capture);
                captures.Add(capture);
            }
        }
        catch
        {
            Close();
            throw;
        }
        return captures;
    }

    public Task CommitAsync(CancellationToken cancellationToken) { Close(); return Task.CompletedTask; }
    public Task AbortAsync() { Close(); return Task.CompletedTask; }
    public ValueTask DisposeAsync() { Close(); return ValueTask.CompletedTask; }

    private void Close()
    {
        foreach (var c in _open) c.Dispose();
        _open.Clear();
    }
}

/// <summary>
/// A file or block device read for one cycle: the live disk (every block a candidate), or a clone made at the capture
/// instant with the ranges its tracker found changed.
/// </summary>
internal sealed class FileDiskCapture(string diskId, Sources.ISourceDisk source, IReadOnlyList<ByteRange>? changedRanges = null, string? historyLostReason = null,
    IReadOnlyList<ByteRange>? dataRanges = null) : IDiskCapture
{
    public string DiskId => diskId;
    public long Size => source.Size;
    public IReadOnlyList<ByteRange>? ChangedRanges => changedRanges;
    public string? HistoryLostReason => historyLostReason;
    public IReadOnlyList<ByteRange>? DataRanges => dataRanges;

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken) => source.ReadAsync(offset, buffer, cancellationToken);

    public void Prefetch(long offset, long length) => (source as DiskSource)?.WillNeed(offset, length);

    public void Dispose() => source.Dispose();
}
