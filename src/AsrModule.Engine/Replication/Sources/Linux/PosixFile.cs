using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace AsrModule.Engine.Replication.Sources.Linux;

/// <summary>
/// open(2) with exactly the flags asked for, wrapped in a <see cref="SafeFileHandle"/>.
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
}
