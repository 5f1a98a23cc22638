using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace AsrModule.Engine.Replication.Sources.Linux;

/// <summary>
/// Makes a point-in-time copy of a live file in constant time by sharing its extents (a reflink,
/// ioctl FICLONE), as XFS (mkfs.xfs -m reflink=1, the default since xfsprogs 5.1) and btrfs can.
/// </summary>
/// <remarks>
/// <para>
/// Why: a source that keeps running (a VM image being written) cannot be read consistently in place.
/// A clone is a second file sharing every data block with the source at the instant of the ioctl; the
/// file system copies a block on the first write to either side (copy-on-write), so the clone keeps
/// the bytes of that instant for as long as it exists while the source runs on. Before sharing, the
/// kernel writes back the source's dirty page cache, so data written with write(2) and not yet synced
/// is in the clone too. What a running program holds only in its own memory is, of course, not.
/// </para>
/// <para>
/// The clone is created with O_EXCL and mode 0600: it never replaces an existing file and is readable
/// only by the engine's user whatever the source's permissions were. It lives on the source's file
/// system (cloning cannot cross file systems), so the caller picks a directory there and deletes the
/// clone once read; until then it holds the blocks the source has since overwritten.
/// </para>
/// </remarks>
internal static class FileClone
{
    /// <summary>_IOW(0x94, 9, int): share all of the source's extents with the (empty) destination.</summary>
    private const uint FICLONE = 0x40049409;

    [DllImport("libc", SetLastError = true, EntryPoint = "ioctl")]
    private static extern int ioctl(int fd, nuint request, nint argument);

    [DllImport("libc", SetLastError = true, EntryPoint = "statfs")]
    private static extern unsafe int statfs([MarshalAs(UnmanagedType.LPUTF8Str)] string path, byte* buffer);

    /// <summary>
    /// Creates <paramref name="clonePath"/> as a reflink clone of <paramref name="sourcePath"/>. False, with a
    /// sentence naming the cause and errno in <paramref name="whyNot"/>, when it cannot; no file is left behind
    /// then (the partly made clone is deleted).
    /// </summary>
    public static bool TryClone(string sourcePath, string clonePath, out string? whyNot)
    {
        if (!OperatingSystem.IsLinux())
        {
            whyNot = "file clones (FICLONE) are a Linux feature";
            return false;
        }
        // The type is checked before opening: a FIFO would block open(2), and FICLONE on a device or
        // directory fails with a bare EINVAL/EISDIR that says nothing useful.
        var type = DiskFileType.Of(sourcePath);
        if (type is { Kind: not DiskFileKind.RegularFile })
        {
            whyNot = type.Value.Kind == DiskFileKind.Missing
                ? $"source '{sourcePath}' does not exist"
                : $"source '{sourcePath}' is {DiskFileType.Describe(type.Value.Kind)}, and only regular files can be cloned";
            return false;
        }

        using var source = PosixFile.TryOpen(sourcePath, PosixFile.ReadOnly | PosixFile.NonBlocking, 0, out int openErrno);
        if (source is null)
        {
            whyNot = $"cannot open source '{sourcePath}' for reading: {Errno.Describe(openErrno)}";
            return false;
        }

        const int privateMode = 0x180; // 0600
        using var clone = PosixFile.TryOpen(clonePath, PosixFile.WriteOnly | PosixFile.Create | PosixFile.Exclusive, privateMode, out int createErrno);
        if (clone is null)
        {
            whyNot = $"cannot create clone '{clonePath}': {DescribeCreateFailure(createErrno)}";
            return false;
        }

        int cloneErrno = Clone(source, clone);
        if (cloneErrno == 0)
        {
            whyNot = null;
            return true;
        }

        clone.Dispose();
        try { File.Delete(clonePath); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { /* reported below */ }
        string leftOver = File.Exists(clonePath) ? $" (and the empty '{clonePath}' could not be deleted)" : "";
        whyNot = $"cannot clone '{sourcePath}' to '{clonePath}': {DescribeCloneFailure(cloneErrno, sourcePath, clonePath)}{leftOver}";
        return false;
    }

    /// <summary>
    /// The name of the file system holding <paramref name="path"/> ("xfs", "btrfs", "ext4", "tmpfs", "overlay",
    /// otherwise the magic number in hex such as "0x6969"), from statfs(2) f_type; null when statfs fails.
    /// Used to explain a failed clone ("ext4 cannot clone files").
    /// </summary>
    public static unsafe string? FileSystemName(string path)
    {
        if (!OperatingSystem.IsLinux()) return null;
        // struct statfs is 120 bytes on x86_64 and aarch64 and starts with f_type, a C long. A larger buffer
        // costs nothing and guards against a libc with a bigger struct.
        byte* buffer = stackalloc byte[256];
        if (statfs(path, buffer) != 0) return null;
        var span = new ReadOnlySpan<byte>(buffer, 256);
        ulong magic = IntPtr.Size == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(span) : BinaryPrimitives.ReadUInt32LittleEndian(span);
        // Magics are 32-bit values; compare the low half so a sign-extended long cannot miss.
        return (uint)magic switch
        {
            0x58465342 => "xfs",
            0x9123683E => "btrfs",
            0xEF53 => "ext4", // ext2, ext3 and ext4 share the magic; ext4 is what Linux mounts them with today
            0x01021994 => "tmpfs",
            0x794C7630 => "overlay",
            _ => $"0x{(uint)magic:X}",
        };
    }

    private static int Clone(SafeFileHandle source, SafeFileHandle clone)
    {
        bool sourceAdded = false, cloneAdded = false;
        source.DangerousAddRef(ref sourceAdded);
        clone.DangerousAddRef(ref cloneAdded);
        try
        {
            int rc = ioctl((int)clone.DangerousGetHandle(), FICLONE, source.DangerousGetHandle());
            return rc == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
        finally
        {
            if (cloneAdded) clone.DangerousRelease();
            if (sourceAdded) source.DangerousRelease();
        }
    }

    private static string DescribeCreateFailure(int errno) => errno switch
    {
        Errno.EEXIST => $"it already exists, and a clone never replaces a file ({Errno.Name(errno)})",
        Errno.ENOENT or Errno.ENOTDIR => $"its directory does not exist ({Errno.Name(errno)})",
        Errno.EACCES or Errno.EPERM => $"permission denied in its directory ({Errno.Name(errno)})",
        Errno.EROFS => $"its directory is on a read-only file system ({Errno.Name(errno)})",
        Errno.ENOSPC or Errno.EDQUOT => $"no space or quota left for a new file ({Errno.Name(errno)})",
        _ => Errno.Describe(errno),
    };

    private static string DescribeCloneFailure(int errno, string sourcePath, string clonePath) => errno switch
    {
        Errno.EOPNOTSUPP or Errno.EINVAL or Errno.ENOTTY =>
            $"the file system ({FileSystemName(sourcePath) ?? "unknown"}) cannot clone files (reflink): XFS needs reflink=1, btrfs always can, ext4 and tmpfs cannot; on btrfs a nodatacow (chattr +C) file cannot be cloned either ({Errno.Describe(errno)})",
        Errno.EXDEV =>
            $"the clone directory is on another file system ({FileSystemName(Path.GetDirectoryName(Path.GetFullPath(clonePath)) ?? clonePath) ?? "unknown"}) than the source ({FileSystemName(sourcePath) ?? "unknown"}); a clone shares the source's blocks so cannot cross file systems ({Errno.Describe(errno)})",
        Errno.ETXTBSY => $"the source is an active swap file ({Errno.Describe(errno)})",
        Errno.EPERM => $"the source or clone is immutable or append-only (chattr +i/+a), or the clone is a swap file ({Errno.Describe(errno)})",
        Errno.ENOSPC or Errno.EDQUOT => $"no space or quota left for the clone's metadata ({Errno.Describe(errno)})",
        Errno.EBADF => $"the source is not readable or the clone not writable by this process ({Errno.Describe(errno)})",
        _ => Errno.Describe(errno),
    };
}
