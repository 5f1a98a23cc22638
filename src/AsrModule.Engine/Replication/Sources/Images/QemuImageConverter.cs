using System.Globalization;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Storage;

namespace AsrModule.Engine.Replication.Sources.Images;

/// <summary>
/// Writes disks out as images of the hypervisors we recover to, with <c>qemu-img convert</c> and
/// <c>qemu-img create</c>. A destination appears complete or not at all, and never replaces an existing file.
/// </summary>
/// <remarks>
/// <para>The image is written inside a sibling directory "&lt;destination&gt;.partial" under its final file name
/// and moved out when complete: a monolithic sparse VMDK names its own file in its embedded descriptor, so it
/// must be written under the name it keeps. A leftover of an interrupted conversion is replaced.</para>
/// <para>Output formats: qcow2, VMDK (monolithicSparse, one file VMware products open), VHDX (dynamic), VDI
/// (dynamic) and raw (a sparse file), all with QEMU's defaults otherwise. Legacy VHD is read only. Zero ranges of
/// the source are not written (qemu-img's default), so every output is sparse.</para>
/// </remarks>
public static class QemuImageConverter
{
    private const string PartialSuffix = ".partial";

    /// <summary>
    /// Converts <paramref name="sourceSpec"/> (an image file, or an NBD URI "nbd://host:port/export" or
    /// "nbd+unix:///export?socket=/path" whose data is <paramref name="sourceFormat"/>, usually raw) into a new
    /// <paramref name="destinationFormat"/> image at <paramref name="destinationPath"/>.
    /// </summary>
    public static async Task ConvertAsync(string sourceSpec, DiskImageFormat sourceFormat, string destinationPath, DiskImageFormat destinationFormat, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sourceSpec);
        if (!Enum.IsDefined(sourceFormat))
            throw new AsrException(AsrErrorIds.DiskFormatUnsupported, AsrErrorKind.InvalidArgument,
                $"Disk image format {(int)sourceFormat} of '{sourceSpec}' is not supported. Use one of: {DiskImageFormats.AcceptedNames}.", sourceSpec);
        string source = IsNbdUri(sourceSpec) ? sourceSpec : DiskImageFile.Existing(sourceSpec, forWriting: false).FullPath;
        await WriteAtomicallyAsync(destinationPath, destinationFormat, (partial, ct) => QemuTools.RunAsync(QemuTools.QemuImg,
            [
                "convert", "-q",
                // qemu-img's default target cache mode for convert is "unsafe" (no flush at the end); a recovered disk must be durable.
                "-t", "writeback",
                "-f", DiskImageFormats.QemuName(sourceFormat),
                "-O", DiskImageFormats.QemuName(destinationFormat),
                .. OutputOptions(destinationFormat),
                source, partial,
            ],
            new QemuToolFailure(destinationPath,
                $"convert '{sourceSpec}' ({DiskImageFormats.DisplayName(sourceFormat)}) to {DiskImageFormats.DisplayName(destinationFormat)} image '{destinationPath}'",
                AsrErrorKind.WriteError,
                $"Check that '{sourceSpec}' is readable as {DiskImageFormats.DisplayName(sourceFormat)} and that the destination's file system has room for the image."),
            Timeout.InfiniteTimeSpan, ct), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Creates an empty (all-zero, sparse) <paramref name="format"/> image of <paramref name="size"/> bytes.</summary>
    public static async Task CreateAsync(string path, DiskImageFormat format, long size, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        await WriteAtomicallyAsync(path, format, (partial, ct) => QemuTools.RunAsync(QemuTools.QemuImg,
            ["create", "-q", "-f", DiskImageFormats.QemuName(format), .. OutputOptions(format), partial, size.ToString(CultureInfo.InvariantCulture)],
            new QemuToolFailure(path, $"create {DiskImageFormats.DisplayName(format)} image '{path}' of {size} bytes", AsrErrorKind.WriteError,
                "Check that the directory is writable and its file system has room."),
            QemuTools.MetadataTimeout, ct), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The <c>-o</c> options of each output format.</summary>
    internal static IReadOnlyList<string> OutputOptions(DiskImageFormat format) => format switch
    {
        // QEMU's default too, spelled out because it is the one single-file VMDK every VMware product opens.
        DiskImageFormat.Vmdk => ["-o", "subformat=monolithicSparse"],
        _ => [],
    };

    internal static bool IsNbdUri(string spec) =>
        spec.StartsWith("nbd://", StringComparison.Ordinal) || spec.StartsWith("nbd+unix://", StringComparison.Ordinal) || spec.StartsWith("nbd+tcp://", StringComparison.Ordinal);

    private static async Task WriteAtomicallyAsync(string destinationPath, DiskImageFormat format, Func<string, CancellationToken, Task> write, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(destinationPath);
        DiskImageFormats.EnsureWritable(format, destinationPath);
        string destination = Path.GetFullPath(destinationPath);
        if (File.Exists(destination) || Directory.Exists(destination))
            throw new AsrException(AsrErrorIds.ExportDestinationExists, AsrErrorKind.ResourceExists,
                $"'{destinationPath}' already exists and is not overwritten. Choose another path, or delete the file first.", destinationPath);
        string directory = Path.GetDirectoryName(destination)!;
        string partialDirectory = destination + PartialSuffix;
        string partial = Path.Combine(partialDirectory, Path.GetFileName(destination));
        try
        {
            Directory.CreateDirectory(directory);
            RemovePartial(partialDirectory, partial);
            Directory.CreateDirectory(partialDirectory);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new AsrException(AsrErrorIds.DiskImageFailed, AsrErrorKind.WriteError,
                $"Cannot prepare '{partialDirectory}' to write '{destinationPath}': {ex.Message}. Check that '{directory}' is writable, and remove '{partialDirectory}' if it holds other files.", destinationPath, ex);
        }
        try
        {
            await write(partial, cancellationToken).ConfigureAwait(false);
            File.Move(partial, destination, overwrite: false);
            Directory.Delete(partialDirectory);
            LocalDirectoryStore.FlushDirectory(directory);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new AsrException(AsrErrorIds.DiskImageFailed, AsrErrorKind.WriteError,
                $"The finished image could not be moved to '{destinationPath}': {ex.Message}. Check that nothing else created it meanwhile and that '{directory}' is writable.", destinationPath, ex);
        }
        finally
        {
            try { RemovePartial(partialDirectory, partial); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { /* left for the next attempt to replace */ }
        }
    }

    /// <summary>Removes the partial image and its directory; a directory holding anything else is left alone (and fails the write).</summary>
    private static void RemovePartial(string partialDirectory, string partial)
    {
        if (!Directory.Exists(partialDirectory)) return;
        File.Delete(partial);
        Directory.Delete(partialDirectory, recursive: false);
    }
}
