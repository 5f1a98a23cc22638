using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace AsrModule.Engine.Replication.Sources.Linux;

/// <summary>
/// Reads where a file's data lives on disk with ioctl FS_IOC_FIEMAP: the list of extents (file offset,
/// physical address, length, flags). Two reflink clones of one source made at different times can then
/// be compared extent by extent (<see cref="ExtentMapDiff"/>) to find what changed between them without
/// reading any data.
/// </summary>
/// <remarks>
/// FIEMAP_FLAG_SYNC is set so dirty pages are written back first; without it, data still in the page
/// cache shows as delayed allocation (no physical address), which the diff has to distrust. The kernel
/// returns at most as many extents as the buffer holds, so the map is read in pages, each starting where
/// the previous page's last extent ended, until an extent carries FIEMAP_EXTENT_LAST or none is left.
/// </remarks>
internal static class FileExtentMap
{
    /// <summary>_IOWR('f', 11, struct fiemap).</summary>
    private const uint FS_IOC_FIEMAP = 0xC020660B;
    private const uint FIEMAP_FLAG_SYNC = 0x1;

    // struct fiemap: fm_start u64 @0, fm_length u64 @8, fm_flags u32 @16, fm_mapped_extents u32 @20,
    // fm_extent_count u32 @24, fm_reserved u32 @28, then fm_extents[].
    private const int HeaderSize = 32;
    // struct fiemap_extent: fe_logical u64 @0, fe_physical u64 @8, fe_length u64 @16, fe_reserved64[2] @24,
    // fe_flags u32 @40, fe_reserved[3] @44.
    private const int ExtentSize = 56;
    private const int ExtentsPerCall = 512;

    [DllImport("libc", SetLastError = true, EntryPoint = "ioctl")]
    private static extern unsafe int ioctl(int fd, nuint request, byte* argument);

    /// <summary>
    /// All extents of the open file, sorted by file offset. Holes are the gaps between them. Throws
    /// <see cref="IOException"/> naming the errno when the file system has no FIEMAP (EOPNOTSUPP) or it fails.
    /// </summary>
    public static unsafe IReadOnlyList<FileExtent> Read(SafeFileHandle handle)
    {
        var extents = new List<FileExtent>();
        byte[] buffer = new byte[HeaderSize + ExtentSize * ExtentsPerCall];
        bool added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            int fd = (int)handle.DangerousGetHandle();
            ulong start = 0;
            while (true)
            {
                Array.Clear(buffer);
                var header = buffer.AsSpan(0, HeaderSize);
                BinaryPrimitives.WriteUInt64LittleEndian(header, start);
                BinaryPrimitives.WriteUInt64LittleEndian(header[8..], ulong.MaxValue - start); // to the end of the file
                BinaryPrimitives.WriteUInt32LittleEndian(header[16..], FIEMAP_FLAG_SYNC);
                BinaryPrimitives.WriteUInt32LittleEndian(header[24..], ExtentsPerCall);
                int rc;
                fixed (byte* pointer = buffer) rc = ioctl(fd, FS_IOC_FIEMAP, pointer);
                if (rc != 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    throw new IOException($"FIEMAP failed at offset {start}: {Errno.Describe(errno)}"
                        + (errno is Errno.EOPNOTSUPP or Errno.ENOTTY ? "; the file system cannot report file extents" : ""));
                }

                uint mapped = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(20));
                if (mapped == 0) break; // nothing at or after start: the rest of the file is a hole
                if (mapped > ExtentsPerCall) throw new IOException($"FIEMAP reported {mapped} extents for a buffer of {ExtentsPerCall}.");

                bool last = false;
                long pageEnd = 0;
                for (int i = 0; i < mapped; i++)
                {
                    var entry = buffer.AsSpan(HeaderSize + i * ExtentSize, ExtentSize);
                    var extent = new FileExtent(
                        checked((long)BinaryPrimitives.ReadUInt64LittleEndian(entry)),
                        checked((long)BinaryPrimitives.ReadUInt64LittleEndian(entry[8..])),
                        checked((long)BinaryPrimitives.ReadUInt64LittleEndian(entry[16..])),
                        (FileExtentFlags)BinaryPrimitives.ReadUInt32LittleEndian(entry[40..]));
                    last |= (extent.Flags & FileExtentFlags.Last) != 0;
                    pageEnd = Math.Max(pageEnd, extent.LogicalEnd);
                    AddClippedToStart(extents, extent, (long)start);
                }

                if (last) break;
                ulong next = (ulong)pageEnd;
                if (next <= start) throw new IOException($"FIEMAP made no progress at offset {start}.");
                start = next;
            }
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
        return extents;
    }

    /// <summary>
    /// The first extent of a page may begin before the page's start (it overlaps the end of the previous
    /// page's last extent); only the part not reported yet is kept, so the list never overlaps itself.
    /// Its physical address moves along with the logical one (valid for plain extents; the diff refuses
    /// or over-reports the others).
    /// </summary>
    private static void AddClippedToStart(List<FileExtent> extents, FileExtent extent, long start)
    {
        if (extent.LogicalEnd <= start || extent.Length <= 0) return;
        if (extent.Logical < start)
        {
            long skip = start - extent.Logical;
            bool movable = (extent.Flags & (FileExtentFlags.Encoded | FileExtentFlags.Unknown | FileExtentFlags.DataInline)) == 0;
            extent = extent with { Logical = start, Physical = movable ? extent.Physical + skip : extent.Physical, Length = extent.Length - skip };
        }
        extents.Add(extent);
    }
}
