using System.Runtime.InteropServices;

namespace AsrModule.Engine.Replication.Consistency;

/// <summary>
/// Whether a file on this host can be trusted by the process that is about to use it on the vault's say
/// (a freeze script it would run, a QMP socket it would connect to): the file, and the directory that holds
/// it, must be owned by root or by the user this process runs as, and must not be writable by every user
/// (a directory may be, with the sticky bit, as /tmp is: then only the owner can replace the file). So only
/// someone who could already act as this user can change what is run between the check and the use.
/// </summary>
internal static class HostFileTrust
{
    [DllImport("libc")]
    private static extern uint geteuid();

    private const int OtherWrite = 0x2, Sticky = 0x200;

    /// <summary>The user this process runs as (0 where there is no such notion).</summary>
    public static uint EffectiveUserId => OperatingSystem.IsLinux() || OperatingSystem.IsMacOS() ? geteuid() : 0;

    /// <summary>
    /// Null when <paramref name="path"/> (after its symlinks) and its directory pass the rule above, else why not
    /// (a sentence fragment: "'x' is owned by user 1001, ..."). Null too where the platform cannot tell (no statx).
    /// </summary>
    public static string? Problem(string path, DiskFileKind expected)
    {
        string real = Storage.OutputLocation.RealPath(path);
        if (DiskFileType.Of(real) is not { } file) return null;
        if (file.Kind == DiskFileKind.Missing) return $"'{path}' does not exist";
        if (file.Kind != expected)
            return $"'{path}' is {Describe(file.Kind)}, not {Describe(expected)}";
        uint me = EffectiveUserId;
        if (file.Uid != 0 && file.Uid != me)
            return $"'{real}' is owned by user {file.Uid}, neither root nor the user this runs as ({me})";
        if ((file.Permissions & OtherWrite) != 0)
            return $"'{real}' is writable by every user";
        string? parent = Path.GetDirectoryName(real);
        if (parent is not null && DiskFileType.Of(parent) is { Kind: DiskFileKind.Directory } dir)
        {
            if (dir.Uid != 0 && dir.Uid != me)
                return $"its directory '{parent}' is owned by user {dir.Uid}, neither root nor the user this runs as ({me})";
            if ((dir.Permissions & OtherWrite) != 0 && (dir.Permissions & Sticky) == 0)
                return $"its directory '{parent}' is writable by every user (and not sticky), so anyone can replace it";
        }
        return null;
    }

    private static string Describe(DiskFileKind kind) => kind switch
    {
        DiskFileKind.RegularFile => "a regular file",
        DiskFileKind.Socket => "a unix socket",
        DiskFileKind.BlockDevice => "a block device",
        _ => DiskFileType.Describe(kind),
    };
}
