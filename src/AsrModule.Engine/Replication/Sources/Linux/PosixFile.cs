using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace AsrModule.Engine.Replication.Sources.Linux;

/// <summary>
/// open(2) with exactly the flags asked for, wrapped in a <see cref="SafeFileHandle"/>; and reopening an open file with
/// O_DIRECT (the direct reader and writer of disks).
/// </summary>
/// <remarks>
/// <see cref="File.OpenHandle(string, FileMode, FileAccess, FileShare, FileOptions, long)"/> is not used here
/// because these primitives need flags it does not expose: O_EXCL with a private 0600 mode for a clone
/// (a half-made capture must never be readable by others nor replace an existing file), O_NONBLOCK so a
/// path swapped for a FIFO cannot hang the engine, and no advisory flock() on a live source that other
/// programs own. The flag values are the generic Linux ones (x86_64 and aarch64 agree on these).
/// </remarks>
internal static class PosixFile
{
    public const int ReadOnly = 0x0, WriteOnly = 0x1, Create = 0x40, Exclusive = 0x80, NonBlocking = 0x800, CloseOnExec = 0x80000;

    [DllImport("libc", SetLastError = true, EntryPoint = "open")]
    private static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, int mode);

    /// <summary>Opens <paramref name="path"/>; null with <paramref name="errno"/> set when open(2) fails.</summary>
    public static SafeFileHandle? TryOpen(string path, int flags, int mode, out int errno)
    {
        int fd = open(path, flags | CloseOnExec, mode);
        if (fd < 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return null;
        }
        errno = 0;
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>
    /// The open file of <paramref name="file"/> opened again through <c>/proc/self/fd</c> (the same inode, whatever its path
    /// became) with O_DIRECT and <paramref name="access"/>; null where that cannot be (not Linux, unknown O_DIRECT, refused).
    /// </summary>
    internal static SafeFileHandle? ReopenDirect(SafeFileHandle file, int access)
    {
        if (!OperatingSystem.IsLinux()) return null;
        int oDirect = ODirectOf(RuntimeInformation.ProcessArchitecture);
        if (oDirect == 0) return null;
        bool added = false;
        file.DangerousAddRef(ref added);
        try
        {
            return TryOpen($"/proc/self/fd/{(int)file.DangerousGetHandle()}", access | oDirect, 0, out _);
        }
        finally
        {
            if (added) file.DangerousRelease();
        }
    }

    /// <summary>O_DIRECT differs between Linux architectures (asm-generic 0x4000; arm and arm64 0x10000); 0 = not known here.</summary>
    internal static int ODirectOf(Architecture architecture) => architecture switch
    {
        Architecture.X64 or Architecture.X86 => 0x4000,
        Architecture.Arm64 or Architecture.Arm => 0x10000,
        _ => 0,
    };

    /// <summary>The flags of an open descriptor, as /proc/self/fdinfo shows them (octal), for tests.</summary>
    internal static string FdInfoFlags(SafeFileHandle handle)
    {
        string info = File.ReadAllText($"/proc/self/fdinfo/{(int)handle.DangerousGetHandle()}");
        return info.Split('\n').First(l => l.StartsWith("flags:", StringComparison.Ordinal))["flags:".Length..].Trim();
    }
}
