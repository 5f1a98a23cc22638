using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Replication.Sources.Images;

/// <summary>
/// The checks every image operation makes before handing a path to QEMU, so that a missing or unreadable file is
/// reported in the engine's words (<see cref="AsrErrorIds.DiskNotFound"/>, <see cref="AsrErrorIds.DiskUnreadable"/>)
/// rather than as a QEMU error, and so that QEMU is only ever given absolute paths: a relative path with a colon
/// ("nbd:host:10809", "json:{...}") would be taken by QEMU as a protocol, an absolute one never is.
/// </summary>
internal static class DiskImageFile
{
    /// <summary>An existing image file or block device, as an absolute path.</summary>
    public readonly record struct Checked(string FullPath, bool IsBlockDevice);

    public static Checked Existing(string path, bool forWriting)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = Path.GetFullPath(path);
        var type = DiskFileType.Of(full);
        // Checked before opening: opening a FIFO blocks until a writer comes.
        if (type is { Kind: not (DiskFileKind.RegularFile or DiskFileKind.BlockDevice or DiskFileKind.Missing) })
            throw new AsrException(AsrErrorIds.DiskUnsupported, AsrErrorKind.InvalidArgument,
                $"Disk image '{path}' is {DiskFileType.Describe(type.Value.Kind)}. Give the path of a disk image file or a block device.", path);
        if (type is { Kind: DiskFileKind.Missing } || (type is null && !File.Exists(full)))
            throw new AsrException(AsrErrorIds.DiskNotFound, AsrErrorKind.ObjectNotFound,
                $"Disk image '{path}' does not exist. Give the path of an existing disk image file (qcow2, VMDK, VHDX, VDI, VHD or raw) or block device.", path);
        try
        {
            File.OpenHandle(full, FileMode.Open, forWriting ? FileAccess.ReadWrite : FileAccess.Read, FileShare.ReadWrite).Dispose();
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            throw forWriting
                ? new AsrException(AsrErrorIds.DiskImageFailed, AsrErrorKind.WriteError,
                    $"Disk image '{path}' cannot be opened for writing: {ex.Message}. Check that it is writable by the user the engine runs as and not on a read-only file system.", path, ex)
                : new AsrException(AsrErrorIds.DiskUnreadable, AsrErrorKind.ReadError,
                    $"Disk image '{path}' cannot be opened for reading: {ex.Message}. Check that it is readable by the user the engine runs as.", path, ex);
        }
        return new Checked(full, type is { Kind: DiskFileKind.BlockDevice });
    }
}
