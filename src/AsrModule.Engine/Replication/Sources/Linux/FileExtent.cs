namespace AsrModule.Engine.Replication.Sources.Linux;

/// <summary>
/// One extent of a file as FIEMAP reports it: <see cref="Length"/> bytes of the file from offset
/// <see cref="Logical"/> are stored at <see cref="Physical"/> (a byte address on the file system's
/// device; on btrfs an address in its own logical chunk space, equally unique).
/// </summary>
internal readonly record struct FileExtent(long Logical, long Physical, long Length, FileExtentFlags Flags)
{
    /// <summary>The file offset just past the extent.</summary>
    public long LogicalEnd => Logical + Length;

    /// <summary>
    /// Physical minus logical: two extents with the same delta map every byte they both cover to the same
    /// physical byte (for plain, unencoded extents).
    /// </summary>
    public long Delta => Physical - Logical;
}
