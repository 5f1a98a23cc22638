namespace AsrModule.Engine.Items;

/// <summary>One replicated disk of a protected item.</summary>
public sealed class ProtectedDisk
{
    /// <summary>Stable id inside the item (disk0, disk1, ...), used in vault keys.</summary>
    public string DiskId { get; set; } = "";
    /// <summary>Unique name inside the item; recovered disks are written under this name.</summary>
    public string Name { get; set; } = "";
    public string SourcePath { get; set; } = "";
    public long SizeBytes { get; set; }
    public int BlockSize { get; set; }
    public bool IsBlockDevice { get; set; }
    /// <summary>
    /// What <see cref="SourcePath"/> was when it was protected ("file dev:inode", or "block major:minor"):
    /// reprotect writes to the original disk only while the path still names that same file or device.
    /// Null in records made before it was recorded.
    /// </summary>
    public string? SourceIdentity { get; set; }
    /// <summary>
    /// The image format of <see cref="SourcePath"/> ("qcow2", "vmdk", "vhdx", "vdi", "vpc"), pinned when the disk was protected
    /// (from the file's magic bytes, or the user's -SourceFormat) and never probed again: a guest that writes an image
    /// header into a raw disk cannot change how it is read. Null: raw (an image file or a block device).
    /// </summary>
    public string? SourceFormat { get; set; }

    public override string ToString() => Name;
}
