namespace AsrModule.Engine.Replication.Sources.Linux;

/// <summary>
/// The fe_flags of a FIEMAP extent (linux/fiemap.h): what the file system says about how far its
/// <see cref="FileExtent.Physical"/> address can be trusted and how the data is stored.
/// </summary>
[Flags]
internal enum FileExtentFlags : uint
{
    None = 0,
    /// <summary>The last extent of the file.</summary>
    Last = 0x1,
    /// <summary>The data's location is not known (physical is 0).</summary>
    Unknown = 0x2,
    /// <summary>Delayed allocation: written but no blocks chosen yet (also sets <see cref="Unknown"/>).</summary>
    DelayedAllocation = 0x4,
    /// <summary>Stored encoded (btrfs compression): physical names the whole encoded extent, not the byte.</summary>
    Encoded = 0x8,
    /// <summary>Stored encrypted (fscrypt).</summary>
    DataEncrypted = 0x80,
    /// <summary>Physical is not block aligned (the data shares a block with other data).</summary>
    NotAligned = 0x100,
    /// <summary>Stored inside metadata (btrfs small files, ext4 inline data): physical is not a data block.</summary>
    DataInline = 0x200,
    /// <summary>Stored packed with other files' tails.</summary>
    DataTail = 0x400,
    /// <summary>Allocated but never written (preallocated): reads as zeros.</summary>
    Unwritten = 0x800,
    /// <summary>The file system merged several of its own extents into this one.</summary>
    Merged = 0x1000,
    /// <summary>The blocks are shared with another file (a clone) or snapshot.</summary>
    Shared = 0x2000,
}
