using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Replication.Sources.Images;

/// <summary>
/// The file name a disk gets when it is written out in a format (an export, a failover's recovered disks): the one
/// rule every writer and reader of recovered disks uses, so that the files are found again by name.
/// </summary>
/// <remarks>
/// A disk keeps its name when it is written raw or its name already ends with the format's usual extension
/// ("web01.vmdk" as VMDK); otherwise a known disk image extension (.img .raw .qcow2 .vmdk .vhdx .vdi .vhd) is
/// replaced by the format's ("web01-os.img" as qcow2 is "web01-os.qcow2"), else the extension is appended
/// ("data" as VHDX is "data.vhdx"). Comparisons ignore case.
/// </remarks>
public static class DiskImageFileNames
{
    private static readonly string[] KnownExtensions = [".img", ".raw", ".qcow2", ".vmdk", ".vhdx", ".vdi", ".vhd"];

    /// <summary>The usual extension of <paramref name="format"/>'s files, with its dot (raw: ".img").</summary>
    public static string Extension(DiskImageFormat format) => format switch
    {
        DiskImageFormat.Raw => ".img",
        DiskImageFormat.Qcow2 => ".qcow2",
        DiskImageFormat.Vmdk => ".vmdk",
        DiskImageFormat.Vhdx => ".vhdx",
        DiskImageFormat.Vdi => ".vdi",
        DiskImageFormat.Vpc => ".vhd",
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "Unknown disk image format."),
    };

    /// <summary>The file name of the disk <paramref name="diskName"/> written as <paramref name="format"/>.</summary>
    public static string For(string diskName, DiskImageFormat format)
    {
        ArgumentNullException.ThrowIfNull(diskName);
        if (format == DiskImageFormat.Raw) return diskName;
        string extension = Extension(format);
        if (diskName.EndsWith(extension, StringComparison.OrdinalIgnoreCase)) return diskName;
        string current = Path.GetExtension(diskName);
        // A name that is only an extension (".img") keeps it as its stem.
        if (current.Length > 0 && current.Length < diskName.Length && KnownExtensions.Contains(current, StringComparer.OrdinalIgnoreCase))
            return diskName[..^current.Length] + extension;
        return diskName + extension;
    }

    /// <summary>
    /// The path of the disk <paramref name="diskName"/> (a name from the vault) written as <paramref name="format"/>
    /// in <paramref name="directory"/>: the vault's name and the derived name must both be plain file names that stay
    /// inside the directory (<see cref="VaultRecordChecks.JoinInside"/>, VaultDataCorrupt naming <paramref name="recordKey"/>).
    /// </summary>
    public static string JoinInside(string directory, string diskName, DiskImageFormat format, string recordKey)
    {
        VaultRecordChecks.JoinInside(directory, diskName, "", recordKey);
        return VaultRecordChecks.JoinInside(directory, For(diskName, format), "", recordKey);
    }
}
