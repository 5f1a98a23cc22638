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

    public override string ToString() => Name;
}
