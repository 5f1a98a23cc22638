using AsrModule.Engine.Items;

namespace AsrModule.Engine.Replication.Tracking;

/// <summary>
/// The tracker for raw image files and block devices: the kernel offers no write log for them, so
/// every cycle reads the live disk and compares each 4 KiB block's keyed hash with the hash table
/// stored with the previous point. The history is that table; when it is lost the cycle falls back
/// to a checksum resync against the vault. Reads are live, so a point is only point-in-time when the
/// writers are quiet for the scan (freeze hooks).
/// </summary>
public sealed class HashScanTracker : IChangeTracker
{
    private readonly List<FileDiskCapture> _open = new();

    public string Kind => "HashScan";
    public bool CapturesPointInTime => false;

    public Task PauseSourceAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task ResumeSourceAsync() => Task.CompletedTask;

    public Task<IReadOnlyList<IDiskCapture>> CaptureAsync(AsrProtectedItem item, long lastSequence, long nextSequence, CancellationToken cancellationToken)
    {
        var captures = new List<IDiskCapture>();
        try
        {
            foreach (var disk in item.Disks)
            {
                var capture = new FileDiskCapture(disk.DiskId, DiskSource.Open(disk.SourcePath));
                _open.Add(capture);
                captures.Add(capture);
            }
        }
        catch
        {
            Close();
            throw;
        }
        return Task.FromResult<IReadOnlyList<IDiskCapture>>(captures);
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

/// <summary>A live file or block device read for one cycle; every block is a candidate.</summary>
internal sealed class FileDiskCapture(string diskId, DiskSource source) : IDiskCapture
{
    public string DiskId => diskId;
    public long Size => source.Size;
    public IReadOnlyList<ByteRange>? ChangedRanges => null;
    public string? HistoryLostReason => null;

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        source.ReadExactly(offset, buffer.Span);
        return ValueTask.CompletedTask;
    }

    public void Dispose() => source.Dispose();
}
