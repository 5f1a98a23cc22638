using AsrModule.Engine.Items;
using AsrModule.Engine.Replication.Consistency;

namespace AsrModule.Engine.Replication.Tracking.Reflink;

/// <summary>
/// Where an item's clones live: <c>&lt;directory of the disk&gt;/.asr-capture/&lt;item id&gt;/</c>, beside the image
/// files because a clone (FICLONE) can only be made on the file system of its source. The directory is made by this
/// process with mode 0700 and is only used while it is a real directory (not a symlink) owned by root or this user, so
/// a path taken from the vault can make the engine create and delete only files it names itself
/// (<c>&lt;disk id&gt;.&lt;sequence&gt;.&lt;attempt&gt;.clone</c>), in a directory it made.
/// </summary>
internal sealed class ReflinkCloneDirectory
{
    public const string DirectoryName = ".asr-capture";
    private const string Suffix = ".clone";

    private ReflinkCloneDirectory(string path) => Path = path;

    public string Path { get; }

    /// <summary>The clone directory of <paramref name="disk"/> of <paramref name="item"/> (not created).</summary>
    public static ReflinkCloneDirectory Of(AsrProtectedItem item, ProtectedDisk disk) =>
        new(System.IO.Path.Combine(System.IO.Path.GetDirectoryName(disk.SourcePath)!, DirectoryName, item.Id));

    /// <summary>Creates the directory (0700) if needed; null when it is usable, else why not.</summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public string? Ensure()
    {
        try
        {
            string parent = System.IO.Path.GetDirectoryName(Path)!;
            if (!Directory.Exists(parent)) Directory.CreateDirectory(parent, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            if (!Directory.Exists(Path)) Directory.CreateDirectory(Path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"the clone directory '{Path}' cannot be made: {ex.Message}";
        }
        return Problem();
    }

    /// <summary>
    /// Null when the directory, and the <c>.asr-capture</c> directory that holds it, are ones this process may create and
    /// delete clones in: real directories (not symbolic links), owned by root or this user, writable by nobody else.
    /// </summary>
    public string? Problem() => DirectoryProblem(System.IO.Path.GetDirectoryName(Path)!) ?? DirectoryProblem(Path);

    private static string? DirectoryProblem(string path)
    {
        if (File.ResolveLinkTarget(path, returnFinalTarget: false) is not null)
            return $"the clone directory '{path}' is a symbolic link";
        if (DiskFileType.Of(path) is not { } dir) return null;
        if (dir.Kind != DiskFileKind.Directory) return $"'{path}' is not a directory";
        if (dir.Uid != 0 && dir.Uid != HostFileTrust.EffectiveUserId)
            return $"the clone directory '{path}' is owned by user {dir.Uid}, neither root nor the user this runs as";
        if ((dir.Permissions & 0x12) != 0) return $"the clone directory '{path}' is writable by others than its owner";
        return null;
    }

    public string CloneOf(string diskId, long sequence, string attemptId) =>
        System.IO.Path.Combine(Path, $"{diskId}.{sequence}.{attemptId}{Suffix}");

    /// <summary>Deletes this disk's clones except <paramref name="keep"/> (full path); files of other names are left alone.</summary>
    public void DeleteClonesOf(string diskId, string? keep)
    {
        if (!Directory.Exists(Path) || Problem() is not null) return;
        foreach (var file in Directory.EnumerateFiles(Path, diskId + ".*" + Suffix))
            if (!string.Equals(file, keep, StringComparison.Ordinal) && IsCloneName(System.IO.Path.GetFileName(file), diskId))
                TryDelete(file);
    }

    /// <summary>Deletes every clone of the item and the directory (Disable-AsrReplication).</summary>
    public void DeleteAll()
    {
        if (!Directory.Exists(Path) || Problem() is not null) return;
        foreach (var file in Directory.EnumerateFiles(Path, "*" + Suffix))
            if (System.IO.Path.GetFileName(file).Split('.') is [var diskId, ..] && IsCloneName(System.IO.Path.GetFileName(file), diskId)) TryDelete(file);
        try { Directory.Delete(Path); } catch (IOException) { } // something else is in it: leave it
    }

    private static bool IsCloneName(string name, string diskId)
    {
        var parts = name.Split('.');
        return parts.Length == 4 && parts[0] == diskId && long.TryParse(parts[1], out _) && parts[2].All(char.IsAsciiHexDigit) && parts[3] == "clone";
    }

    internal static void TryDelete(string file)
    {
        try { File.Delete(file); } catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
    }
}
