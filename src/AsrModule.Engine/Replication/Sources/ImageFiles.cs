using System.Buffers.Binary;
using AsrModule.Engine.Items;

namespace AsrModule.Engine.Replication.Sources;

/// <summary>
/// Whether a disk's image file holds the whole disk. A qcow2 image with a backing file or an external data file, and a
/// VMDK made of a descriptor and extent files, keep guest data in other files: a clone of the named file is not the disk,
/// and the named file's write fingerprint does not show writes to the others.
/// </summary>
internal static class ImageFiles
{
    /// <summary>Null when the disk's file is the whole disk (raw images, block devices, single-file images); else why not.</summary>
    public static string? NotSelfContained(ProtectedDisk disk)
    {
        if (disk.SourceFormat is not ("qcow2" or "vmdk")) return null;
        Span<byte> header = stackalloc byte[80];
        int read;
        try
        {
            using var file = File.OpenHandle(disk.SourcePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            read = RandomAccess.Read(file, header, 0);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"disk '{disk.Name}' cannot be read: {ex.Message}";
        }
        if (disk.SourceFormat == "vmdk")
            return read >= 4 && header[..4].SequenceEqual("KDMV"u8) ? null
                : $"disk '{disk.Name}' is a VMDK of a descriptor and extent files";
        if (read < 16) return $"disk '{disk.Name}' is too short for a qcow2 header";
        if (BinaryPrimitives.ReadUInt64BigEndian(header[8..]) != 0)
            return $"disk '{disk.Name}' is a qcow2 image with a backing file";
        // qcow2 v3: incompatible feature bit 2 = an external data file holds the guest's clusters.
        if (BinaryPrimitives.ReadUInt32BigEndian(header[4..]) >= 3 && (read < 80 || (BinaryPrimitives.ReadUInt64BigEndian(header[72..]) & 0x4) != 0))
            return $"disk '{disk.Name}' is a qcow2 image with an external data file";
        return null;
    }
}
