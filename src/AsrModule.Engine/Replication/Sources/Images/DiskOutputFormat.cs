using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Replication.Sources.Images;

/// <summary>
/// The format recovered disks are written in (Export-AsrRecoveryPoint -Format, New-AsrLocalTarget -Format):
/// one format for every disk, or <see cref="Source"/>, each disk in the format its source was protected in.
/// </summary>
public enum DiskOutputFormat
{
    /// <summary>Raw image files (the default): the guest's bytes as they are.</summary>
    Raw,
    Qcow2,
    Vmdk,
    Vhdx,
    Vdi,
    /// <summary>Each disk in its <see cref="Items.ProtectedDisk.SourceFormat"/> (raw when it has none).</summary>
    Source,
}

/// <summary>Resolving a <see cref="DiskOutputFormat"/> to each disk's <see cref="DiskImageFormat"/>, and its spelling in records.</summary>
public static class DiskOutputFormats
{
    /// <summary>What a record stores (<see cref="Failover.RecoveredMachineRecord.Properties"/> "DiskFormat").</summary>
    public static string Name(DiskOutputFormat format) => format.ToString();

    /// <summary>
    /// A format read back from a record (vault data): null or empty is raw (records from before formats), "Source",
    /// or a writable format's name as <see cref="DiskImageFormats.Parse"/> takes it. Anything else is
    /// <see cref="AsrErrorIds.DiskFormatUnsupported"/>; it is never used as a path.
    /// </summary>
    public static DiskOutputFormat Parse(string? recorded, string what)
    {
        if (string.IsNullOrEmpty(recorded)) return DiskOutputFormat.Raw;
        if (string.Equals(recorded.Trim(), nameof(DiskOutputFormat.Source), StringComparison.OrdinalIgnoreCase)) return DiskOutputFormat.Source;
        DiskImageFormat format;
        try { format = DiskImageFormats.Parse(recorded); }
        catch (AsrException ex)
        {
            throw new AsrException(AsrErrorIds.DiskFormatUnsupported, AsrErrorKind.InvalidData,
                $"{what} records the disk format '{Printable(recorded)}', which is not one the engine writes ({DiskImageFormats.AcceptedNames} or Source). The record is damaged or from a newer version.", what, ex);
        }
        return format switch
        {
            DiskImageFormat.Raw => DiskOutputFormat.Raw,
            DiskImageFormat.Qcow2 => DiskOutputFormat.Qcow2,
            DiskImageFormat.Vmdk => DiskOutputFormat.Vmdk,
            DiskImageFormat.Vhdx => DiskOutputFormat.Vhdx,
            DiskImageFormat.Vdi => DiskOutputFormat.Vdi,
            _ => throw new AsrException(AsrErrorIds.DiskFormatUnsupported, AsrErrorKind.InvalidData,
                $"{what} records the disk format '{Printable(recorded)}', which is read only here; the record is damaged.", what),
        };
    }

    /// <summary>
    /// The format the disk <paramref name="diskName"/> of <paramref name="itemName"/> is written in: <paramref name="format"/>,
    /// or for <see cref="DiskOutputFormat.Source"/> the disk's pinned <paramref name="sourceFormat"/> (null: raw). A legacy VHD
    /// source cannot be written: <see cref="AsrErrorIds.DiskFormatUnsupported"/>, suggesting VHDX or raw.
    /// </summary>
    public static DiskImageFormat Resolve(DiskOutputFormat format, string? sourceFormat, string diskName, string itemName) => format switch
    {
        DiskOutputFormat.Raw => DiskImageFormat.Raw,
        DiskOutputFormat.Qcow2 => DiskImageFormat.Qcow2,
        DiskOutputFormat.Vmdk => DiskImageFormat.Vmdk,
        DiskOutputFormat.Vhdx => DiskImageFormat.Vhdx,
        DiskOutputFormat.Vdi => DiskImageFormat.Vdi,
        DiskOutputFormat.Source => FromSource(sourceFormat, diskName, itemName),
        _ => throw new AsrException(AsrErrorIds.DiskFormatUnsupported, AsrErrorKind.InvalidArgument,
            $"Disk format {(int)format} is not supported. Use Raw, Qcow2, Vmdk, Vhdx, Vdi or Source.", diskName),
    };

    private static DiskImageFormat FromSource(string? sourceFormat, string diskName, string itemName)
    {
        var format = sourceFormat is null ? DiskImageFormat.Raw : DiskImageFormats.Parse(sourceFormat);
        if (!DiskImageFormats.IsWritable(format))
            throw new AsrException(AsrErrorIds.DiskFormatUnsupported, AsrErrorKind.InvalidArgument,
                $"Disk '{diskName}' of '{itemName}' was protected from a {DiskImageFormats.DisplayName(format)} image, and legacy VHD is supported for reading only, " +
                "so -Format Source cannot write it. Use -Format Vhdx (Hyper-V) or -Format Raw.", diskName);
        return format;
    }

    private static string Printable(string value) =>
        new(value.Take(64).Select(c => char.IsControl(c) ? '?' : c).ToArray());
}
