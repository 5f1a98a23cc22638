using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace AsrModule.Engine.Replication;

/// <summary>What a disk path names once symlinks are followed, from statx(2).</summary>
internal enum DiskFileKind { Missing, RegularFile, BlockDevice, Directory, CharacterDevice, Fifo, Socket, Other }

/// <summary>
/// The type and identity (device + inode) of a path, read with statx(2) without opening it: opening
/// a FIFO blocks until a writer appears, so the type must be known first. statx's buffer has the
/// same layout on every Linux architecture (unlike struct stat), so no per-arch layout is needed.
/// .NET's own APIs cannot tell a FIFO or character device from a regular file (File.Exists is true
/// for both, FileAttributes carries no type), hence the P/Invoke.
/// </summary>
/// <remarks>
/// Also carries what host-side trust checks need (<see cref="Consistency.HostFileTrust"/>): the owner,
/// the permission bits, the size, and for a block device the device number it names (st_rdev).
/// </remarks>
internal readonly record struct DiskFileType(DiskFileKind Kind, ulong Device, ulong Inode)
{
    private const int AtFdCwd = -100;
    private const uint StatxType = 0x1, StatxMode = 0x2, StatxUid = 0x8, StatxIno = 0x100, StatxSize = 0x200;

    /// <summary>Owner (stx_uid).</summary>
    public uint Uid { get; init; }
    /// <summary>Permission bits, including set-id and sticky (the low 12 bits of stx_mode).</summary>
    public int Permissions { get; init; }
    /// <summary>stx_size: the length of a regular file (a block device reports 0; its size comes from the device).</summary>
    public ulong Size { get; init; }
    /// <summary>For a block device: the device it names (major &lt;&lt; 32 | minor), stable while the device is.</summary>
    public ulong RawDevice { get; init; }

    /// <summary>
    /// What identifies the disk across time: a regular file by its file system and inode, a block device by
    /// the device number it names (its node under /dev is recreated with a new inode at every boot).
    /// </summary>
    public string? Identity => Kind switch
    {
        DiskFileKind.RegularFile => $"file {Device >> 32}:{Device & 0xFFFFFFFF}:{Inode}",
        DiskFileKind.BlockDevice => $"block {RawDevice >> 32}:{RawDevice & 0xFFFFFFFF}",
        _ => null,
    };

    [DllImport("libc", SetLastError = true, EntryPoint = "statx")]
    private static extern unsafe int statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, byte* buffer);

    /// <summary>Null when the platform has no statx (not Linux, or an old libc); callers then skip the checks.</summary>
    public static unsafe DiskFileType? Of(string path)
    {
        if (!OperatingSystem.IsLinux()) return null;
        byte* buffer = stackalloc byte[256];
        int rc;
        try { rc = statx(AtFdCwd, path, 0, StatxType | StatxMode | StatxUid | StatxIno | StatxSize, buffer); }
        catch (EntryPointNotFoundException) { return null; }
        catch (DllNotFoundException) { return null; }
        if (rc != 0) return new DiskFileType(DiskFileKind.Missing, 0, 0);
        var span = new ReadOnlySpan<byte>(buffer, 256);
        ushort mode = BinaryPrimitives.ReadUInt16LittleEndian(span[28..]);
        ulong inode = BinaryPrimitives.ReadUInt64LittleEndian(span[32..]);
        uint uid = BinaryPrimitives.ReadUInt32LittleEndian(span[20..]);
        ulong size = BinaryPrimitives.ReadUInt64LittleEndian(span[40..]);
        uint rdevMajor = BinaryPrimitives.ReadUInt32LittleEndian(span[128..]);
        uint rdevMinor = BinaryPrimitives.ReadUInt32LittleEndian(span[132..]);
        uint devMajor = BinaryPrimitives.ReadUInt32LittleEndian(span[136..]);
        uint devMinor = BinaryPrimitives.ReadUInt32LittleEndian(span[140..]);
        var kind = (mode & 0xF000) switch
        {
            0x8000 => DiskFileKind.RegularFile,
            0x6000 => DiskFileKind.BlockDevice,
            0x4000 => DiskFileKind.Directory,
            0x2000 => DiskFileKind.CharacterDevice,
            0x1000 => DiskFileKind.Fifo,
            0xC000 => DiskFileKind.Socket,
            _ => DiskFileKind.Other,
        };
        return new DiskFileType(kind, ((ulong)devMajor << 32) | devMinor, inode)
        {
            Uid = uid,
            Permissions = mode & 0xFFF,
            Size = size,
            RawDevice = ((ulong)rdevMajor << 32) | rdevMinor,
        };
    }

    public static string Describe(DiskFileKind kind) => kind switch
    {
        DiskFileKind.Directory => "a directory",
        DiskFileKind.CharacterDevice => "a character device",
        DiskFileKind.Fifo => "a FIFO (named pipe)",
        DiskFileKind.Socket => "a socket",
        _ => "not a regular file or block device",
    };
}
