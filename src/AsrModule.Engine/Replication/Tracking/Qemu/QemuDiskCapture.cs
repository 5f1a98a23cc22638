using AsrModule.Engine.Errors;
using AsrModule.Engine.Exports;

namespace AsrModule.Engine.Replication.Tracking.Qemu;

/// <summary>
/// One disk frozen at the capture instant: QEMU's fleecing overlay of the disk, read over QEMU's NBD
/// server. QEMU copies a block into the overlay before the guest overwrites it, so reads return the
/// disk as it was at the capture while the guest runs on.
/// </summary>
internal sealed class QemuDiskCapture(string diskId, long size, IReadOnlyList<ByteRange>? changedRanges, string? historyLostReason, NbdClient client) : IDiskCapture
{
    // One NBD connection answers one request at a time.
    private readonly SemaphoreSlim _gate = new(1, 1);
    private int _disposed;

    public string DiskId => diskId;
    public long Size => size;
    public IReadOnlyList<ByteRange>? ChangedRanges => changedRanges;
    public string? HistoryLostReason => historyLostReason;

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (offset < 0 || offset + buffer.Length > size)
            throw new ArgumentOutOfRangeException(nameof(offset), $"{offset}+{buffer.Length} lies outside disk '{diskId}' ({size} bytes).");
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            await client.ReadAsync(offset, buffer, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException)
        {
            throw new AsrException(AsrErrorIds.DiskUnreadable, AsrErrorKind.ReadError,
                $"Reading disk '{diskId}' from QEMU's point-in-time view failed at offset {offset}: {ex.Message}", diskId, ex);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Closes the NBD connection (QEMU only deletes an export nobody is connected to). Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        client.Dispose();
    }
}
