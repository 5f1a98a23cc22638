using System.Runtime.InteropServices;
using AsrModule.Engine.Replication.Tracking;
using Microsoft.Win32.SafeHandles;

namespace AsrModule.Engine.Replication.Sources.Linux;

/// <summary>
/// Finds the parts of a sparse file that hold data, with lseek(2) SEEK_DATA / SEEK_HOLE, so that the
/// first full read of a large, mostly empty disk image skips its holes (they read as zeros) instead of
/// reading and hashing gigabytes of zeros.
/// </summary>
/// <remarks>
/// File systems report holes at their own granularity (a file system block, a page for tmpfs), so a
/// range may start before or end after the bytes actually written; unwritten (preallocated) extents
/// may be reported as data or hole depending on the file system, both read as zeros. lseek moves the
/// descriptor's file offset: do not share the handle with a reader that uses it (positional reads such
/// as <see cref="RandomAccess"/> do not).
/// </remarks>
internal static class SparseFile
{
    private const int SEEK_DATA = 3, SEEK_HOLE = 4;

    [DllImport("libc", SetLastError = true)]
    private static extern long lseek(int fd, long offset, int whence);

    /// <summary>
    /// The ranges of [0, <paramref name="size"/>) that hold data, sorted and disjoint. One range covering
    /// everything when the file system cannot tell (EINVAL: no SEEK_DATA support); throws
    /// <see cref="IOException"/> with the errno for any other failure.
    /// </summary>
    public static IReadOnlyList<ByteRange> DataRanges(SafeFileHandle handle, long size)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        var ranges = new List<ByteRange>();
        if (size == 0) return ranges;
        bool added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            int fd = (int)handle.DangerousGetHandle();
            long position = 0;
            while (position < size)
            {
                long dataStart = lseek(fd, position, SEEK_DATA);
                if (dataStart < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == Errno.ENXIO) break; // no data at or after position
                    if (errno == Errno.EINVAL && position == 0) return [new ByteRange(0, size)];
                    throw new IOException($"lseek SEEK_DATA at offset {position} failed: {Errno.Describe(errno)}");
                }
                if (dataStart >= size) break;

                long holeStart = lseek(fd, dataStart, SEEK_HOLE);
                if (holeStart < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    // The file shrank between the two calls: the data ends where the file now ends.
                    if (errno != Errno.ENXIO) throw new IOException($"lseek SEEK_HOLE at offset {dataStart} failed: {Errno.Describe(errno)}");
                    holeStart = size;
                }
                long end = Math.Min(holeStart, size);
                if (end <= dataStart) throw new IOException($"lseek reported data at {dataStart} but a hole at {holeStart}.");
                ranges.Add(new ByteRange(dataStart, end - dataStart));
                position = end;
            }
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
        return ranges;
    }
}
