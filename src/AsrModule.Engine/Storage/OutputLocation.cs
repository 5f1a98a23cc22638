using System.Runtime.InteropServices;
using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Storage;

/// <summary>
/// Where the engine may write restored disks (an export destination, a failover target, the disks reprotect
/// and failback write): never inside a local vault's directory (recovered disks would mix with the vault's
/// objects), never under the kernel's /proc, /sys or /dev (a disk may be a block device under /dev, nothing
/// else there: not /dev/shm), and never under the system's own /etc, /boot, /usr, /bin, /sbin, /lib*.
/// Symlinks are followed, so a link into the vault or /etc is caught too.
/// </summary>
public static class OutputLocation
{
    private static readonly string[] KernelRoots = ["/proc", "/sys", "/dev"];
    private static readonly string[] SystemRoots = ["/etc", "/boot", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

    /// <summary>Throws <paramref name="errorId"/> (InvalidArgument) when <paramref name="path"/> may not hold output.</summary>
    public static void EnsureAllowed(string path, IVaultStore? vaultStore, string errorId, string what)
    {
        string full = RealPath(path);
        foreach (var root in KernelRoots)
            if (IsInside(full, root))
                throw new AsrException(errorId, AsrErrorKind.InvalidArgument,
                    $"{what} '{path}' is under {root}, a kernel file system; choose a directory on a disk.", path);
        EnsureOutsideSystemAndVault(path, full, vaultStore, errorId, what);
    }

    /// <summary>
    /// Checks a disk that is about to be written in place (reprotect, reverse cycles, failback). It must be a
    /// regular file or a block device (a block device may be under /dev; /dev/shm and the rest of /dev, /proc
    /// and /sys are refused), outside the system directories and the vault, of <paramref name="expectedSize"/>
    /// bytes when given, and — when <paramref name="expectedIdentity"/> is given — still the same file or
    /// device (<see cref="Replication.DiskFileType.Identity"/>). A missing disk is accepted only when
    /// <paramref name="mayCreate"/>. Returns the disk's identity (null when missing or not known).
    /// A disk in an image format (<paramref name="format"/>: a pinned format such as "vmdk"; null or "raw" for raw) must be
    /// a format that can be written, and its size is the guest-visible one (read with qemu-img, the format given, never probed).
    /// </summary>
    public static string? EnsureDiskTarget(string path, long? expectedSize, string? expectedIdentity, bool mayCreate,
        IVaultStore? vaultStore, string errorId, string what, string? format = null)
    {
        var imageFormat = format is null ? Replication.Sources.Images.DiskImageFormat.Raw : Replication.Sources.Images.DiskImageFormats.Parse(format);
        if (!Replication.Sources.Images.DiskImageFormats.IsWritable(imageFormat))
            throw new AsrException(AsrErrorIds.DiskFormatUnsupported, AsrErrorKind.InvalidArgument,
                $"{what} '{path}' is a {Replication.Sources.Images.DiskImageFormats.DisplayName(imageFormat)} image, which is read only here. " +
                "Write to a raw file or an image of another format (qcow2, VMDK, VHDX, VDI) instead.", path);
        AsrException Refused(string why) => new(errorId, AsrErrorKind.InvalidArgument, $"{what} '{path}' {why}", path);
        if (!Path.IsPathFullyQualified(path)) throw Refused("is not an absolute path.");
        string full = RealPath(path);
        var type = Replication.DiskFileType.Of(full);
        foreach (var root in KernelRoots)
            if (IsInside(full, root) && !(root == "/dev" && type is { Kind: Replication.DiskFileKind.BlockDevice } && !IsInside(full, "/dev/shm")))
                throw Refused($"is under {root} and is not a block device ({full}); only a disk image file or a block device is written.");
        EnsureOutsideSystemAndVault(path, full, vaultStore, errorId, what);
        if (type is null) return null; // no statx: the checks above are what can be done
        var file = type.Value;
        if (file.Kind == Replication.DiskFileKind.Missing)
        {
            if (mayCreate) return null;
            throw new AsrException(AsrErrorIds.DiskNotFound, AsrErrorKind.ObjectNotFound, $"{what} '{path}' does not exist.", path);
        }
        if (file.Kind is not (Replication.DiskFileKind.RegularFile or Replication.DiskFileKind.BlockDevice))
            throw Refused($"is {Replication.DiskFileType.Describe(file.Kind)}; only a disk image file or a block device is written.");
        if (expectedIdentity is not null && file.Identity != expectedIdentity)
            throw Refused($"is not the disk that was protected there ({file.Identity ?? "unknown"}, recorded {expectedIdentity}): it was replaced, " +
                          "or the item record names another file. If this is the right disk, give it explicitly with -AlternateDisk.");
        if (expectedSize is { } size)
        {
            long actual = imageFormat != Replication.Sources.Images.DiskImageFormat.Raw
                ? Replication.Sources.Images.QemuImageInfo.VirtualSizeAsync(full, imageFormat, CancellationToken.None).GetAwaiter().GetResult()
                : file.Kind == Replication.DiskFileKind.RegularFile ? (long)file.Size : BlockDeviceSize(full);
            if (actual != size)
                throw Refused($"has {actual:N0} bytes, not the {size:N0} bytes of the disk it would receive; give a disk of that size with -AlternateDisk.");
        }
        return file.Identity;
    }

    private static long BlockDeviceSize(string path)
    {
        using var source = Replication.DiskSource.Open(path);
        return source.Size;
    }

    private static void EnsureOutsideSystemAndVault(string path, string full, IVaultStore? vaultStore, string errorId, string what)
    {
        foreach (var root in SystemRoots)
            if (IsInside(full, root))
                throw new AsrException(errorId, AsrErrorKind.InvalidArgument,
                    $"{what} '{path}' is under {root}, a system directory; choose a location on a data disk.", path);
        if (vaultStore is LocalDirectoryStore local)
        {
            string vaultRoot = RealPath(local.Location);
            if (IsInside(full, vaultRoot))
                throw new AsrException(errorId, AsrErrorKind.InvalidArgument,
                    $"{what} '{path}' is inside the vault '{local.Location}'; choose a location outside the vault.", path);
        }
    }

    /// <summary>Whether <paramref name="path"/> (symlinks resolved) lies inside the directory of a local vault.</summary>
    public static bool IsInsideVault(string path, IVaultStore vaultStore) =>
        vaultStore is LocalDirectoryStore local && IsInside(RealPath(path), RealPath(local.Location));

    private static bool IsInside(string path, string root)
    {
        root = root.TrimEnd('/');
        return root.Length == 0 || path == root || path.StartsWith(root + "/", StringComparison.Ordinal);
    }

    /// <summary>The canonical path: the longest existing ancestor with its symlinks resolved, plus the rest as given.</summary>
    internal static string RealPath(string path)
    {
        string full = Path.GetFullPath(path).TrimEnd('/');
        if (full.Length == 0) return "/";
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return full;
        string existing = full, rest = "";
        while (!Directory.Exists(existing) && !File.Exists(existing))
        {
            string? parent = Path.GetDirectoryName(existing);
            if (parent is null) return full;
            rest = Path.Combine(Path.GetFileName(existing), rest);
            existing = parent;
        }
        string resolved = existing;
        IntPtr p = realpath(existing, IntPtr.Zero);
        if (p != IntPtr.Zero)
        {
            try { resolved = Marshal.PtrToStringUTF8(p) ?? existing; }
            finally { free(p); }
        }
        return rest.Length == 0 ? resolved : Path.Combine(resolved, rest).TrimEnd('/');
    }

    [DllImport("libc", SetLastError = true)]
    private static extern IntPtr realpath([MarshalAs(UnmanagedType.LPUTF8Str)] string path, IntPtr resolved);

    [DllImport("libc")]
    private static extern void free(IntPtr p);
}
