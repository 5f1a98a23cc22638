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
internal readonly record struct DiskFileType(DiskFileKind Kind, ulong Device, ulong Inode)
{
    private const int AtFdCwd = -100;
    private const uint StatxType = 0x1, StatxIno = 0x100;

    [DllImport("libc", SetLastError = true, EntryPoint = "statx")]
    private static extern unsafe int statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, byte* buffer);

    /// <summary>Null when the platform has no statx (not Linux, or an old libc); callers then skip the checks.</summary>
    public static unsafe DiskFileType? Of(string path)
    {
        if (!OperatingSystem.IsLinux()) return null;
        byte* buffer = stackalloc byte[256];
        int rc;
        try { rc = statx(AtFdCwd, path, 0, StatxType | StatxIno, buffer); }
        catch (EntryPointNotFoundException) { return null; }
        catch (DllNotFoundException) { return null; }
        if (rc != 0) return new DiskFileType(DiskFileKind.Missing, 0, 0);
        var span = new ReadOnlySpan<byte>(buffer, 256);
        ushort mode = BinaryPrimitives.ReadUInt16LittleEndian(span[28..]);
        ulong inode = BinaryPrimitives.ReadUInt64LittleEndian(span[32..]);
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
        return new DiskFileType(kind, ((ulong)devMajor << 32) | devMinor, inode);
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
