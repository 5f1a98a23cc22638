using System.Runtime.InteropServices;
using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Storage;

/// <summary>
/// Where the engine may write restored disks (an export destination, a failover target): never inside
/// a local vault's directory (recovered disks would mix with the vault's objects) and never under the
/// kernel's /proc, /sys or /dev. Symlinks are followed, so a link into the vault is caught too.
/// </summary>
public static class OutputLocation
{
    private static readonly string[] SystemRoots = ["/proc", "/sys", "/dev"];

    /// <summary>Throws <paramref name="errorId"/> (InvalidArgument) when <paramref name="path"/> may not hold output.</summary>
    public static void EnsureAllowed(string path, IVaultStore? vaultStore, string errorId, string what)
    {
        string full = RealPath(path);
        foreach (var root in SystemRoots)
            if (IsInside(full, root))
                throw new AsrException(errorId, AsrErrorKind.InvalidArgument,
                    $"{what} '{path}' is under {root}, a kernel file system; choose a directory on a disk.", path);
        if (vaultStore is LocalDirectoryStore local)
        {
            string vaultRoot = RealPath(local.Location);
            if (IsInside(full, vaultRoot))
                throw new AsrException(errorId, AsrErrorKind.InvalidArgument,
                    $"{what} '{path}' is inside the vault '{local.Location}'; choose a directory outside the vault.", path);
        }
    }

    private static bool IsInside(string path, string root)
    {
        root = root.TrimEnd('/');
        return root.Length == 0 || path == root || path.StartsWith(root + "/", StringComparison.Ordinal);
    }

    /// <summary>The canonical path: the longest existing ancestor with its symlinks resolved, plus the rest as given.</summary>
    private static string RealPath(string path)
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
