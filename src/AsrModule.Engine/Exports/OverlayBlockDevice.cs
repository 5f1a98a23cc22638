using System.Buffers;
using Microsoft.Win32.SafeHandles;

namespace AsrModule.Engine.Exports;

/// <summary>
/// Copy-on-write over a read-only base: writes land in a sparse overlay file (4 KiB granularity,
/// a bitmap in memory says which blocks it holds); reads take overlay blocks where written and base
/// blocks elsewhere. A drill's writes therefore never reach the vault or the source, and deleting
/// the overlay file discards them.
/// </summary>
public sealed class OverlayBlockDevice : IBlockDevice
{
    public const int BlockSize = 4096;
    private readonly IBlockDevice _base;
    private readonly SafeFileHandle _overlay;
    private readonly ulong[] _written;
    // Writes of partial blocks read-modify-write; serialize per device (drill I/O is light).
    private readonly SemaphoreSlim _writeLock = new(1, 1);

    public OverlayBlockDevice(IBlockDevice baseDevice, string overlayPath)
    {
        _base = baseDevice;
        OverlayPath = overlayPath;
        _overlay = File.OpenHandle(overlayPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
        RandomAccess.SetLength(_overlay, baseDevice.Length);
        _written = new ulong[(BlockCount + 63) / 64];
    }

    public string OverlayPath { get; }
    public long Length => _base.Length;
    public bool IsReadOnly => false;
    private long BlockCount => (Length + BlockSize - 1) / BlockSize;

    /// <summary>Bytes of the disk the drill has written (so far).</summary>
    public long WrittenBytes
    {
        get { lock (_written) return _written.Sum(w => (long)System.Numerics.BitOperations.PopCount(w)) * BlockSize; }
    }

    private bool IsWritten(long block)
    {
        lock (_written) return (_written[block >> 6] & (1UL << (int)(block & 63))) != 0;
    }

    private void MarkWritten(long block)
    {
        lock (_written) _written[block >> 6] |= 1UL << (int)(block & 63);
    }

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        long end = offset + buffer.Length;
        long pos = offset;
        while (pos < end)
        {
            long block = pos / BlockSize;
            bool fromOverlay = IsWritten(block);
            // Extend the run while blocks come from the same side.
            long runEnd = Math.Min(end, (block + 1) * BlockSize);
            while (runEnd < end && IsWritten(runEnd / BlockSize) == fromOverlay)
                runEnd = Math.Min(end, (runEnd / BlockSize + 1) * BlockSize);
            var slice = buffer.Slice((int)(pos - offset), (int)(runEnd - pos));
            if (fromOverlay) await ReadOverlayAsync(pos, slice, cancellationToken).ConfigureAwait(false);
            else await _base.ReadAsync(pos, slice, cancellationToken).ConfigureAwait(false);
            pos = runEnd;
        }
    }

    private async ValueTask ReadOverlayAsync(long offset, Memory<byte> buffer, CancellationToken ct)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int n = await RandomAccess.ReadAsync(_overlay, buffer[done..], offset + done, ct).ConfigureAwait(false);
            if (n == 0) { buffer.Span[done..].Clear(); break; }
            done += n;
        }
    }

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (offset < 0 || offset + data.Length > Length) throw new ArgumentOutOfRangeException(nameof(offset));
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        byte[] block = ArrayPool<byte>.Shared.Rent(BlockSize);
        try
        {
            long pos = offset, end = offset + data.Length;
            while (pos < end)
            {
                long b = pos / BlockSize;
                long blockStart = b * BlockSize;
                int blockLength = (int)Math.Min(BlockSize, Length - blockStart);
                int from = (int)(pos - blockStart);
                int count = (int)Math.Min(blockLength - from, end - pos);
                if (count == blockLength || IsWritten(b))
                {
                    await RandomAccess.WriteAsync(_overlay, data.Slice((int)(pos - offset), count), pos, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    // First partial write to this block: copy the base block up, then patch it.
                    await _base.ReadAsync(blockStart, block.AsMemory(0, blockLength), cancellationToken).ConfigureAwait(false);
                    data.Span.Slice((int)(pos - offset), count).CopyTo(block.AsSpan(from));
                    await RandomAccess.WriteAsync(_overlay, block.AsMemory(0, blockLength), blockStart, cancellationToken).ConfigureAwait(false);
                }
                MarkWritten(b);
                pos += count;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(block);
            _writeLock.Release();
        }
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        RandomAccess.FlushToDisk(_overlay);
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        _overlay.Dispose();
        _writeLock.Dispose();
        await _base.DisposeAsync().ConfigureAwait(false);
    }
}
