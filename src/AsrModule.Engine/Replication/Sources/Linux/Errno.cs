using System.Runtime.InteropServices;

namespace AsrModule.Engine.Replication.Sources.Linux;

/// <summary>
/// Names Linux errno values the way an operator can search for them ("EXDEV") together with libc's
/// own sentence for them ("Invalid cross-device link"). Messages built from a bare number ("errno 18")
/// send people to a table; the symbolic name is what man pages and kernel sources use.
/// </summary>
/// <remarks>
/// The numbers are the generic Linux ones, shared by x86_64 and aarch64 (the two architectures the
/// engine runs on); a few architectures (alpha, mips, sparc, parisc) number some of them differently.
/// </remarks>
internal static class Errno
{
    public const int EPERM = 1, ENOENT = 2, EIO = 5, ENXIO = 6, EBADF = 9, EAGAIN = 11, ENOMEM = 12, EACCES = 13,
        EBUSY = 16, EEXIST = 17, EXDEV = 18, ENODEV = 19, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, ETXTBSY = 26,
        EFBIG = 27, ENOSPC = 28, ESPIPE = 29, EROFS = 30, ENOTTY = 25, ENAMETOOLONG = 36, ENOSYS = 38, ELOOP = 40,
        EOPNOTSUPP = 95, EDQUOT = 122;

    /// <summary>On Linux ENOTSUP and EOPNOTSUPP are the same number.</summary>
    public const int ENOTSUP = EOPNOTSUPP;

    /// <summary>"EXDEV (Invalid cross-device link)"; an unlisted value keeps its number: "errno 200 (…)".</summary>
    public static string Describe(int errno) => $"{Name(errno)} ({Marshal.GetPInvokeErrorMessage(errno)})";

    /// <summary>The symbolic name ("EXDEV"), or "errno N" for a value not listed here.</summary>
    public static string Name(int errno) => errno switch
    {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        EIO => "EIO",
        ENXIO => "ENXIO",
        EBADF => "EBADF",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        EXDEV => "EXDEV",
        ENODEV => "ENODEV",
        ENOTDIR => "ENOTDIR",
        EISDIR => "EISDIR",
        EINVAL => "EINVAL",
        ENOTTY => "ENOTTY",
        ETXTBSY => "ETXTBSY",
        EFBIG => "EFBIG",
        ENOSPC => "ENOSPC",
        ESPIPE => "ESPIPE",
        EROFS => "EROFS",
        ENAMETOOLONG => "ENAMETOOLONG",
        ENOSYS => "ENOSYS",
        ELOOP => "ELOOP",
        EOPNOTSUPP => "EOPNOTSUPP",
        EDQUOT => "EDQUOT",
        _ => $"errno {errno}",
    };
}
