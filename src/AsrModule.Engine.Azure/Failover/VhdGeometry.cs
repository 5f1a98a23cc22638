namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// The cylinder/head/sector geometry a VHD footer records (VHD specification 1.0, "CHS Calculation"). Azure and
/// Hyper-V size a fixed disk by the footer's current size, not by this geometry; BIOS-era tools and QEMU (for
/// creator applications it does not know) size it by <see cref="Capacity"/>, which the algorithm rounds down.
/// </summary>
public readonly record struct VhdGeometry(ushort Cylinders, byte Heads, byte SectorsPerTrack)
{
    /// <summary>The largest geometry a footer can hold (about 127 GiB); larger disks record it.</summary>
    public const long MaxTotalSectors = 65535L * 16 * 255;

    /// <summary>Bytes the geometry addresses: cylinders × heads × sectors × 512.</summary>
    public long Capacity => (long)Cylinders * Heads * SectorsPerTrack * 512;

    /// <summary>
    /// The geometry for a disk of <paramref name="sizeBytes"/> bytes, by the specification's algorithm (the same as
    /// Azure PowerShell's <c>DiskGeometry.CreateFromVirtualSize</c> and QEMU's <c>calculate_geometry</c>).
    /// </summary>
    public static VhdGeometry FromSize(long sizeBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sizeBytes);
        long totalSectors = Math.Min(sizeBytes / 512, MaxTotalSectors);
        long sectorsPerTrack, heads, cylinderTimesHeads;
        if (totalSectors >= 65535L * 16 * 63)
        {
            sectorsPerTrack = 255;
            heads = 16;
            cylinderTimesHeads = totalSectors / sectorsPerTrack;
        }
        else
        {
            sectorsPerTrack = 17;
            cylinderTimesHeads = totalSectors / sectorsPerTrack;
            heads = Math.Max(4, (cylinderTimesHeads + 1023) / 1024);
            if (cylinderTimesHeads >= heads * 1024 || heads > 16)
            {
                sectorsPerTrack = 31;
                heads = 16;
                cylinderTimesHeads = totalSectors / sectorsPerTrack;
            }
            if (cylinderTimesHeads >= heads * 1024)
            {
                sectorsPerTrack = 63;
                heads = 16;
                cylinderTimesHeads = totalSectors / sectorsPerTrack;
            }
        }
        return new VhdGeometry((ushort)(cylinderTimesHeads / heads), (byte)heads, (byte)sectorsPerTrack);
    }

    public override string ToString() => $"{Cylinders}/{Heads}/{SectorsPerTrack}";
}
