using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Replication.Sources.Images;

namespace AsrModule.Engine.Replication.Sources;

/// <summary>Opens a source disk by its pinned format: raw files and block devices directly, other image formats through qemu-nbd.</summary>
internal static class SourceDisks
{
    public static Task<ISourceDisk> OpenAsync(ProtectedDisk disk, CancellationToken ct) => OpenAsync(disk.SourcePath, disk.SourceFormat, ct);

    /// <param name="format">The pinned format (<see cref="ProtectedDisk.SourceFormat"/>); null or "raw" reads the file or device as it is.</param>
    public static async Task<ISourceDisk> OpenAsync(string path, string? format, CancellationToken ct)
    {
        if (format is null or "raw") return DiskSource.Open(path);
        // Checked as a raw source would be first: the same type rules (no FIFO, no directory) and messages.
        DiskSource.Open(path).Dispose();
        return await QemuImageSource.OpenAsync(path, DiskImageFormats.Parse(format), null, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// The format to pin for a disk being protected: the user's word when given, else the file's magic bytes (a block
    /// device is raw unless the user says otherwise). Null means raw.
    /// </summary>
    public static string? FormatToPin(string path, string? requested, bool isBlockDevice)
    {
        DiskImageFormat format = requested is { Length: > 0 } && !requested.Equals("auto", StringComparison.OrdinalIgnoreCase)
            ? DiskImageFormats.Parse(requested)
            : isBlockDevice ? DiskImageFormat.Raw : DiskImageFormats.Detect(path);
        return format == DiskImageFormat.Raw ? null : DiskImageFormats.QemuName(format);
    }
}
