using System.Buffers;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Replication.Sources.Images;

namespace AsrModule.Engine.Replication;

/// <summary>What a checksum comparison of two disks found and sent.</summary>
public sealed record DiskSyncStats(long BlocksCompared, long BlocksSent, long BytesSent);

/// <summary>
/// Checksum synchronisation between two disks, as DRBD's checksum resync and Veeam's failback do:
/// each side hashes its own blocks (in parallel; across a network only the hashes would travel),
/// then only blocks whose hashes differ are copied.
/// </summary>
internal static class DiskChecksums
{
    private const int ChunkBlocks = 1024;

    /// <summary>
    /// Hashes every block of a disk (the source side or the target side). A disk in an image format
    /// (<paramref name="format"/>: a pinned <see cref="Items.ProtectedDisk.SourceFormat"/>, null or "raw" for raw) is read
    /// through QEMU, so its guest-visible blocks are hashed.
    /// </summary>
    public static async Task<BlockHashTable> HashAsync(string path, long size, int blockSize, ulong seed, IProgress<long>? bytesDone, CancellationToken ct,
        string? format = null)
    {
        var table = BlockHashTable.Zero(size, blockSize, seed);
        if (!File.Exists(path)) return table; // a missing target is an empty disk: every non-zero block differs
        var imageFormat = ImageFormatOf(format);
        if (imageFormat != DiskImageFormat.Raw)
        {
            await using var image = await QemuImageSource.OpenAsync(path, imageFormat, null, ct).ConfigureAwait(false);
            return await HashAsync(new ImageReader(image), size, blockSize, seed, bytesDone, ct).ConfigureAwait(false);
        }
        using var source = DiskSource.Open(path);
        long readable = Math.Min(size, source.Size);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(ChunkBlocks * blockSize);
        try
        {
            for (long offset = 0; offset < readable; offset += (long)ChunkBlocks * blockSize)
            {
                ct.ThrowIfCancellationRequested();
                int bytes = (int)Math.Min((long)ChunkBlocks * blockSize, readable - offset);
                await Task.Run(() => source.ReadExactly(offset, buffer.AsSpan(0, bytes)), ct).ConfigureAwait(false);
                long first = offset / blockSize;
                for (int b = 0; b * blockSize < bytes; b++)
                {
                    int len = Math.Min(blockSize, bytes - b * blockSize);
                    // A block cut short by a smaller target compares as different (its hash covers fewer bytes).
                    table.Hashes[first + b] = table.Hash(buffer.AsSpan(b * blockSize, len));
                }
                bytesDone?.Report(bytes);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return table;
    }

    /// <summary>Hashes every block of a recovered disk read through <paramref name="source"/> (a file, or an Azure snapshot through its SAS).</summary>
    public static async Task<BlockHashTable> HashAsync(Failover.IRecoveredDiskReader source, long size, int blockSize, ulong seed, IProgress<long>? bytesDone, CancellationToken ct)
    {
        var table = BlockHashTable.Zero(size, blockSize, seed);
        long readable = Math.Min(size, source.Size);
        int chunk = ChunkBlocks * blockSize;
        byte[] current = ArrayPool<byte>.Shared.Rent(chunk), next = ArrayPool<byte>.Shared.Rent(chunk);
        Task? pending = null;
        try
        {
            // The next chunk is read while this one is hashed: over a network the reads are the cost.
            pending = readable > 0 ? source.ReadAsync(0, current.AsMemory(0, (int)Math.Min(chunk, readable)), ct).AsTask() : null;
            for (long offset = 0; offset < readable; offset += chunk)
            {
                int bytes = (int)Math.Min(chunk, readable - offset);
                await pending!.ConfigureAwait(false);
                long nextOffset = offset + chunk;
                pending = nextOffset < readable ? source.ReadAsync(nextOffset, next.AsMemory(0, (int)Math.Min(chunk, readable - nextOffset)), ct).AsTask() : null;
                long first = offset / blockSize;
                for (int b = 0; b * blockSize < bytes; b++)
                    table.Hashes[first + b] = table.Hash(current.AsSpan(b * blockSize, Math.Min(blockSize, bytes - b * blockSize)));
                bytesDone?.Report(bytes);
                (current, next) = (next, current);
            }
        }
        finally
        {
            // A read still in flight (hashing or a progress report threw) writes into its buffer: wait for it first.
            if (pending is not null) try { await pending.ConfigureAwait(false); } catch { /* the original failure is reported */ }
            ArrayPool<byte>.Shared.Return(current);
            ArrayPool<byte>.Shared.Return(next);
        }
        return table;
    }

    /// <summary>
    /// Makes <paramref name="targetPath"/> equal to the recovered disk <paramref name="source"/> (a file, or an Azure
    /// snapshot through its SAS) by copying only the blocks whose hashes differ between <paramref name="sourceTable"/>
    /// and <paramref name="targetTable"/>. A raw target is created or resized to the source's size. A target in an image
    /// format (<paramref name="targetFormat"/>, see <see cref="HashAsync(string, long, int, ulong, IProgress{long}?, CancellationToken, string?)"/>)
    /// is written through QEMU (taking its image lock, so a running VM on it is refused) and flushed; it must exist and
    /// hold the source's size (rounded up to whole 512-byte sectors at most).
    /// </summary>
    public static async Task<DiskSyncStats> CopyDifferencesAsync(Failover.IRecoveredDiskReader source, BlockHashTable sourceTable, string targetPath, BlockHashTable targetTable,
        IProgress<long>? bytesSent, CancellationToken ct, string? targetFormat = null)
    {
        var imageFormat = ImageFormatOf(targetFormat);
        if (imageFormat != DiskImageFormat.Raw)
            return await CopyDifferencesToImageAsync(source, sourceTable, targetPath, imageFormat, targetTable, bytesSent, ct).ConfigureAwait(false);
        using var target = OpenTarget(targetPath, sourceTable.DiskSize);
        return await CopyRunsAsync(source, sourceTable, targetTable, bytesSent,
            (offset, data, token) => RandomAccess.WriteAsync(target, data, offset, token),
            _ => { RandomAccess.FlushToDisk(target); return Task.CompletedTask; }, ct).ConfigureAwait(false);
    }

    private static async Task<DiskSyncStats> CopyDifferencesToImageAsync(Failover.IRecoveredDiskReader source, BlockHashTable sourceTable, string targetPath,
        DiskImageFormat format, BlockHashTable targetTable, IProgress<long>? bytesSent, CancellationToken ct)
    {
        long size = sourceTable.DiskSize;
        await using var target = await QemuImageTarget.OpenAsync(targetPath, format, ct).ConfigureAwait(false);
        if (target.Size < size || target.Size > (size + 511) / 512 * 512)
            throw new AsrException(AsrErrorIds.FailoverTargetInvalid, AsrErrorKind.InvalidArgument,
                $"The {DiskImageFormats.DisplayName(format)} image '{targetPath}' holds {target.Size:N0} bytes, not the {size:N0} bytes of the disk it would receive. " +
                "Give a disk of that size, or a new file, with -AlternateDisk.", targetPath);
        // Durable before the image is closed (and before the caller records anything).
        return await CopyRunsAsync(source, sourceTable, targetTable, bytesSent,
            (offset, data, token) => new ValueTask(target.WriteAsync(offset, data, token)), target.FlushAsync, ct).ConfigureAwait(false);
    }

    /// <summary>Copies every run of blocks (≤ 256) whose hashes differ from <paramref name="source"/> through <paramref name="write"/>, then <paramref name="flush"/>es.</summary>
    private static async Task<DiskSyncStats> CopyRunsAsync(Failover.IRecoveredDiskReader source, BlockHashTable sourceTable, BlockHashTable targetTable, IProgress<long>? bytesSent,
        Func<long, ReadOnlyMemory<byte>, CancellationToken, ValueTask> write, Func<CancellationToken, Task> flush, CancellationToken ct)
    {
        int bs = sourceTable.BlockSize;
        long size = sourceTable.DiskSize;
        long blocksSent = 0, bytes = 0;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(256 * bs);
        try
        {
            long blocks = sourceTable.Hashes.Length;
            for (long b = 0; b < blocks;)
            {
                ct.ThrowIfCancellationRequested();
                if (sourceTable.Hashes[b] == targetTable.Hashes[b]) { b++; continue; }
                long runStart = b;
                while (b < blocks && b - runStart < 256 && sourceTable.Hashes[b] != targetTable.Hashes[b]) b++;
                long offset = runStart * bs;
                int length = (int)Math.Min((b - runStart) * bs, size - offset);
                await source.ReadAsync(offset, buffer.AsMemory(0, length), ct).ConfigureAwait(false);
                await write(offset, buffer.AsMemory(0, length), ct).ConfigureAwait(false);
                blocksSent += b - runStart;
                bytes += length;
                bytesSent?.Report(length);
            }
            await flush(ct).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return new DiskSyncStats(sourceTable.Hashes.Length, blocksSent, bytes);
    }

    /// <summary>A pinned format as stored with a disk (null or "raw": raw); anything else is parsed (DiskFormatUnsupported when unknown).</summary>
    private static DiskImageFormat ImageFormatOf(string? format) => format is null ? DiskImageFormat.Raw : DiskImageFormats.Parse(format);

    /// <summary>An image read through QEMU, as the recovered-disk reader the hashing takes.</summary>
    private sealed class ImageReader(QemuImageSource image) : Failover.IRecoveredDiskReader
    {
        public long Size => image.Size;
        public string Location => image.Path;
        public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken) => image.ReadAsync(offset, buffer, cancellationToken);
    }

    private static Microsoft.Win32.SafeHandles.SafeFileHandle OpenTarget(string path, long size)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            var handle = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite);
            bool isDevice = path.StartsWith("/dev/", StringComparison.Ordinal);
            if (!isDevice && RandomAccess.GetLength(handle) != size) RandomAccess.SetLength(handle, size);
            return handle;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new AsrException(AsrErrorIds.DiskUnreadable, AsrErrorKind.WriteError, $"Disk '{path}' cannot be opened for writing: {ex.Message}", path, ex);
        }
    }
}
