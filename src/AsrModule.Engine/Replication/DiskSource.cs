using AsrModule.Engine.Errors;
using Microsoft.Win32.SafeHandles;

namespace AsrModule.Engine.Replication;

/// <summary>A source disk opened for reading: a raw image file or a Linux block device.</summary>
internal sealed class DiskSource : Sources.ISourceDisk
{
    private readonly SafeFileHandle _handle;
    /// <summary>Bulk reads past the page cache (null where O_DIRECT is not had); dropped once the scan prefetches (<see cref="WillNeed"/>).</summary>
    private Sources.Linux.DirectDiskReader? _direct;

    private DiskSource(string path, SafeFileHandle handle, long size, bool isBlockDevice)
    {
        Path = path;
        _handle = handle;
        _direct = Sources.Linux.DirectDiskReader.TryOpen(handle);
        Size = size;
        IsBlockDevice = isBlockDevice;
    }

    public string Path { get; }
    public long Size { get; }
    public bool IsBlockDevice { get; }

    public static DiskSource Open(string path)
    {
        // Checked before opening: opening a FIFO blocks until a writer comes, and a directory is not "missing".
        if (DiskFileType.Of(path) is { Kind: not (DiskFileKind.RegularFile or DiskFileKind.BlockDevice or DiskFileKind.Missing) } type)
            throw new AsrException(AsrErrorIds.DiskUnsupported, AsrErrorKind.InvalidArgument,
                $"Disk '{path}' is {DiskFileType.Describe(type.Kind)}. Give the path of a raw disk image file or a block device.", path);
        if (!File.Exists(path))
            throw new AsrException(AsrErrorIds.DiskNotFound, AsrErrorKind.ObjectNotFound,
                $"Disk '{path}' does not exist. Give the path of a raw disk image file or a block device.", path);
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            throw new AsrException(AsrErrorIds.DiskUnreadable, AsrErrorKind.ReadError,
                $"Disk '{path}' cannot be opened for reading: {ex.Message}", path, ex);
        }
        try
        {
            bool isBlockDevice = IsBlockDevicePath(path);
            long size = isBlockDevice ? DeviceSize(handle, path) : RandomAccess.GetLength(handle);
            if (isBlockDevice) DropCachedPages(handle);
            var source = new DiskSource(path, handle, size, isBlockDevice);
            // Prove the disk is readable now rather than half-way through a job.
            if (size > 0)
            {
                Span<byte> probe = stackalloc byte[512];
                source.ReadExactly(0, probe[..(int)Math.Min(512, size)]);
            }
            return source;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            handle.Dispose();
            throw new AsrException(AsrErrorIds.DiskUnreadable, AsrErrorKind.ReadError, $"Disk '{path}' cannot be read: {ex.Message}", path, ex);
        }
    }

    /// <summary>
    /// A block device's size: fstat (what .NET's length uses) reports 0 for devices, while
    /// lseek(fd, 0, SEEK_END) returns the device size.
    /// </summary>
    private static long DeviceSize(SafeFileHandle handle, string path)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            long size = lseek((int)handle.DangerousGetHandle(), 0, 2 /* SEEK_END */);
            if (size < 0)
                throw new IOException($"lseek on '{path}' failed (errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}).");
            return size;
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern long lseek(int fd, long offset, int whence);

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int posix_fadvise(int fd, long offset, long length, int advice);

    /// <summary>
    /// A mounted filesystem writes file data to its device with bios that bypass the device node's page
    /// cache, so pages this process cached in an earlier cycle can be stale. Dropping them (they are
    /// clean) makes the reads of this cycle go to the device.
    /// </summary>
    private static void DropCachedPages(SafeFileHandle handle)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);
        try { posix_fadvise((int)handle.DangerousGetHandle(), 0, 0, 4 /* POSIX_FADV_DONTNEED */); }
        finally { if (added) handle.DangerousRelease(); }
    }

    private static bool IsBlockDevicePath(string path)
    {
        if (!OperatingSystem.IsLinux()) return false;
        string resolved = File.ResolveLinkTarget(path, returnFinalTarget: true)?.FullName ?? System.IO.Path.GetFullPath(path);
        return resolved.StartsWith("/dev/", StringComparison.Ordinal)
            && Directory.Exists("/sys/class/block/" + System.IO.Path.GetFileName(resolved));
    }

    public void ReadExactly(long offset, Span<byte> buffer)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int n = _direct?.Read(offset + done, buffer[done..]) ?? -1;
            if (n < 0) n = RandomAccess.Read(_handle, buffer[done..], offset + done);
            if (n == 0)
                throw new AsrException(AsrErrorIds.DiskSizeChanged, AsrErrorKind.InvalidOperation,
                    $"Disk '{Path}' ended at {offset + done} bytes while reading: it shrank during the cycle.", Path);
            done += n;
        }
    }

    /// <summary>The ranges of a regular file that hold data (SEEK_DATA/SEEK_HOLE); null for a block device (it has no holes to ask for).</summary>
    public IReadOnlyList<Tracking.ByteRange>? DataRanges() =>
        IsBlockDevice || !OperatingSystem.IsLinux() ? null : Sources.Linux.SparseFile.DataRanges(_handle, Size);

    /// <summary>
    /// Tells the kernel these bytes will be read soon (POSIX_FADV_WILLNEED): it starts reading them in the background,
    /// so many small scattered reads (a delta's changed ranges) are in flight together instead of one after another.
    /// </summary>
    public void WillNeed(long offset, long length)
    {
        if (!OperatingSystem.IsLinux() || length <= 0) return;
        // What the kernel reads ahead lands in the page cache, which direct reads would pass by: read through it from now on.
        if (Interlocked.Exchange(ref _direct, null) is { } direct) direct.Dispose();
        bool added = false;
        _handle.DangerousAddRef(ref added);
        try { posix_fadvise((int)_handle.DangerousGetHandle(), offset, length, 3 /* POSIX_FADV_WILLNEED */); }
        finally { if (added) _handle.DangerousRelease(); }
    }

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        ReadExactly(offset, buffer.Span);
        return ValueTask.CompletedTask;
    }

    public ValueTask<IReadOnlyList<Tracking.ByteRange>?> GetDataRangesAsync(CancellationToken cancellationToken) => ValueTask.FromResult(DataRanges());

    /// <summary>Whether bulk reads go past the page cache (tests).</summary>
    internal Sources.Linux.DirectDiskReader? DirectReader => _direct;

    public void Dispose()
    {
        _direct?.Dispose();
        _handle.Dispose();
    }
}
