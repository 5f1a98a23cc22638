using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Replication.Sources.Images;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.RecoveryPoints;

/// <summary>
/// Writes every disk of a recovery point to files, bit-exact, in parallel (each stored extent is
/// read and decoded once, then its live segments are written at their offsets; never-written and
/// trimmed ranges stay sparse). The rebuilt block-hash table must match the point's content digest.
/// A disk written in an image format (qcow2, VMDK, VHDX, VDI) is exported raw and verified that way first, then
/// converted with qemu-img, and the image is read back through qemu-nbd and verified against the same digest.
/// </summary>
public static class RecoveryPointExporter
{
    /// <summary>Where a converted disk's raw export waits for its conversion, inside the disk's staging directory.</summary>
    private const string RawSuffix = ".raw";
    private const string PartialSuffix = ".partial";

    /// <summary>One disk of an export: what is written, where, in which format.</summary>
    public sealed record ExportDisk(RecoveryPointDisk Disk, string Target, DiskImageFormat Format);

    /// <summary>disk id → pinned source format (<see cref="ProtectedDisk.SourceFormat"/>) of <paramref name="item"/>'s disks, for <see cref="DiskOutputFormat.Source"/>.</summary>
    public static IReadOnlyDictionary<string, string?> SourceFormatsOf(AsrProtectedItem item) =>
        item.Disks.ToDictionary(d => d.DiskId, d => d.SourceFormat);

    /// <summary>
    /// Checks what an export would do (disks, target files) and throws if it must not run; call before
    /// starting a job so a refused export leaves no trace.
    /// </summary>
    public static (List<RecoveryPointDisk> Disks, List<string> Targets) Plan(AsrRecoveryPoint point, string destinationDirectory, bool force, IReadOnlyCollection<string>? diskFilter,
        Storage.IVaultStore? vaultStore = null, DiskOutputFormat format = DiskOutputFormat.Raw, IReadOnlyDictionary<string, string?>? sourceFormats = null)
    {
        var plan = PlanDisks(point, destinationDirectory, force, diskFilter, vaultStore, format, sourceFormats);
        return (plan.Select(p => p.Disk).ToList(), plan.Select(p => p.Target).ToList());
    }

    /// <summary>
    /// <see cref="Plan"/> with each disk's format. With <see cref="DiskOutputFormat.Source"/>, <paramref name="sourceFormats"/>
    /// (<see cref="SourceFormatsOf"/>) gives each disk's; a legacy VHD source is DiskFormatUnsupported. The files are named by
    /// <see cref="DiskImageFileNames"/>.
    /// </summary>
    public static List<ExportDisk> PlanDisks(AsrRecoveryPoint point, string destinationDirectory, bool force, IReadOnlyCollection<string>? diskFilter,
        Storage.IVaultStore? vaultStore, DiskOutputFormat format, IReadOnlyDictionary<string, string?>? sourceFormats)
    {
        Storage.OutputLocation.EnsureAllowed(destinationDirectory, vaultStore, AsrErrorIds.ExportDestinationInvalid, "Export destination");
        if (diskFilter is { Count: > 0 })
            foreach (var f in diskFilter)
                if (!point.Disks.Any(d => string.Equals(f, d.Name, StringComparison.OrdinalIgnoreCase) || f == d.DiskId))
                    throw new AsrException(AsrErrorIds.DiskNotFound, AsrErrorKind.ObjectNotFound,
                        $"Recovery point {point} has no disk '{f}'. Its disks: {string.Join(", ", point.Disks.Select(d => d.Name))}.", f);
        var disks = point.Disks.Where(d => diskFilter is null || diskFilter.Count == 0
            || diskFilter.Any(f => string.Equals(f, d.Name, StringComparison.OrdinalIgnoreCase) || f == d.DiskId)).ToList();
        if (format == DiskOutputFormat.Source && sourceFormats is null)
            throw new ArgumentNullException(nameof(sourceFormats), "-Format Source needs the source formats of the item's disks.");
        var formats = disks.Select(d => DiskOutputFormats.Resolve(format, SourceFormatOf(point, d, format, sourceFormats), d.Name, point.ItemName)).ToList();
        // Disk names come from the vault: each must be a plain file name that stays inside the destination.
        string manifestKey = VaultLayout.PointManifest(point.ItemId, point.Sequence);
        var plan = disks.Select((d, i) => new ExportDisk(d, DiskImageFileNames.JoinInside(destinationDirectory, d.Name, formats[i], manifestKey), formats[i])).ToList();
        EnsureDistinctFiles(plan.Select(p => (p.Disk.Name, p.Target)), point.ToString());
        if (File.Exists(destinationDirectory))
            throw new AsrException(AsrErrorIds.ExportDestinationExists, AsrErrorKind.InvalidArgument,
                $"'{destinationDirectory}' is a file; -Destination must be a directory.", destinationDirectory);
        if (!force)
            foreach (var t in plan.Select(p => p.Target))
                if (File.Exists(t))
                    throw new AsrException(AsrErrorIds.ExportDestinationExists, AsrErrorKind.ResourceExists,
                        $"'{t}' already exists. Choose an empty destination or use -Force to overwrite it.", t);
        return plan;
    }

    private static string? SourceFormatOf(AsrRecoveryPoint point, RecoveryPointDisk disk, DiskOutputFormat format, IReadOnlyDictionary<string, string?>? sourceFormats)
    {
        if (format != DiskOutputFormat.Source) return null;
        if (!sourceFormats!.TryGetValue(disk.DiskId, out var sourceFormat))
            throw new AsrException(AsrErrorIds.DiskNotFound, AsrErrorKind.ObjectNotFound,
                $"Disk '{disk.Name}' of {point} is no disk of the protected item '{point.ItemName}' any more, so its source format is unknown. Choose the format with -Format Raw, Qcow2, Vmdk, Vhdx or Vdi.", disk.Name);
        return sourceFormat;
    }

    /// <summary>Refuses (DiskDuplicate) two disks whose files would have the same name (say "a.img" and "a.raw" as qcow2).</summary>
    internal static void EnsureDistinctFiles(IEnumerable<(string DiskName, string File)> files, string what)
    {
        var seen = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (disk, file) in files)
        {
            string name = Path.GetFileName(file);
            if (seen.TryGetValue(name, out var other))
                throw new AsrException(AsrErrorIds.DiskDuplicate, AsrErrorKind.InvalidArgument,
                    $"Disks '{other}' and '{disk}' of {what} would both be written as '{name}' in this format. Write them one at a time to different directories (-Disk), or use -Format Raw.", disk);
            seen[name] = disk;
        }
    }

    public static async Task<List<string>> ExportAsync(AsrVault vault, AsrRecoveryPoint point, string destinationDirectory, bool force,
        IReadOnlyCollection<string>? diskFilter, JobContext context, DiskOutputFormat format = DiskOutputFormat.Raw, IReadOnlyDictionary<string, string?>? sourceFormats = null)
    {
        // The caller's copy of the point may predate a rebase by retention; the pin re-reads it and keeps it.
        await using var pin = await PointPin.AcquireAsync(vault, point, "Export", context.CancellationToken).ConfigureAwait(false);
        point = pin.Point;
        var plan = PlanDisks(point, destinationDirectory, force, diskFilter, vault.Store, format, sourceFormats);
        Directory.CreateDirectory(destinationDirectory);
        // Progress counts each disk's bytes once for the export, and once more for a conversion and its verification.
        long totalWork = Math.Max(1, plan.Sum(Work));
        long doneWork = 0;
        // All disks are written and verified as .partial files (a converted disk: in a .partial directory) first, then
        // renamed together: a failed or cancelled export never leaves a machine made of disks from different points.
        var finished = new List<string>();
        try
        {
            foreach (var d in plan)
            {
                if (d.Format == DiskImageFormat.Raw)
                {
                    string partial = d.Target + PartialSuffix;
                    RemoveStaging(partial, Path.GetFileName(d.Target));
                    await ExportDiskAsync(vault, point, d.Disk, partial, doneWork, totalWork, context).ConfigureAwait(false);
                    finished.Add(partial);
                }
                else
                {
                    finished.Add(await ExportImageAsync(vault, point, d, doneWork, totalWork, context).ConfigureAwait(false));
                }
                doneWork += Work(d);
                context.Report((int)(100 * doneWork / totalWork), d.Format == DiskImageFormat.Raw
                    ? $"Exported disk '{d.Disk.Name}' ({d.Disk.SizeBytes:N0} bytes), verified"
                    : $"Exported disk '{d.Disk.Name}' ({d.Disk.SizeBytes:N0} bytes) as {DiskImageFormats.DisplayName(d.Format)} image '{Path.GetFileName(d.Target)}', read back and verified");
            }
        }
        catch (Exception ex)
        {
            foreach (var d in plan)
            {
                try { RemoveStaging(d.Target + PartialSuffix, Path.GetFileName(d.Target)); }
                catch (Exception cleanup) when (cleanup is IOException or UnauthorizedAccessException or AsrException)
                {
                    context.Logger.LogWarning(cleanup, "Could not remove the partial export {Partial}", d.Target + PartialSuffix);
                }
            }
            if (DamagedPointMarker.IsDamage(ex)) await DamagedPointMarker.MarkAsync(vault, point, ex, "Export", context.Logger).ConfigureAwait(false);
            throw;
        }
        for (int i = 0; i < plan.Count; i++)
        {
            File.Move(finished[i], plan[i].Target, overwrite: true);
            if (plan[i].Format != DiskImageFormat.Raw) Directory.Delete(plan[i].Target + PartialSuffix);
        }
        context.Report(100, $"Exported {plan.Count} disk(s) of {point} to '{destinationDirectory}', verified");
        return plan.Select(p => p.Target).ToList();
    }

    private static long Work(ExportDisk d) => d.Format == DiskImageFormat.Raw ? d.Disk.SizeBytes : 2 * d.Disk.SizeBytes;

    /// <summary>
    /// A disk in an image format: exported raw (verified) into "&lt;file&gt;.partial/", converted next to it, the raw copy
    /// removed, and the image read back through qemu-nbd and verified. Returns the finished image, still in its staging directory
    /// (a VMDK names its own file, so the image already has its final name).
    /// </summary>
    private static async Task<string> ExportImageAsync(AsrVault vault, AsrRecoveryPoint point, ExportDisk d, long doneWork, long totalWork, JobContext context)
    {
        var ct = context.CancellationToken;
        var disk = d.Disk;
        string fileName = Path.GetFileName(d.Target);
        string staging = d.Target + PartialSuffix;
        try
        {
            RemoveStaging(staging, fileName);
            Directory.CreateDirectory(staging);
        }
        catch (IOException ex)
        {
            throw new AsrException(AsrErrorIds.ExportDestinationExists, AsrErrorKind.ResourceExists,
                $"'{staging}' holds files the export did not write, and is where disk '{disk.Name}' is prepared. Remove it, or choose another destination.", staging, ex);
        }
        string raw = Path.Combine(staging, fileName + RawSuffix);
        string image = Path.Combine(staging, fileName);
        await ExportDiskAsync(vault, point, disk, raw, doneWork, totalWork, context).ConfigureAwait(false);
        string what = $"{DiskImageFormats.DisplayName(d.Format)} image '{fileName}'";
        context.Report((int)(100 * (doneWork + disk.SizeBytes) / totalWork), $"Converting disk '{disk.Name}' of {point} to {what}");
        try
        {
            await QemuImageConverter.ConvertAsync(raw, DiskImageFormat.Raw, image, d.Format, ct).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(raw);
        }
        long verifyStart = doneWork + disk.SizeBytes + disk.SizeBytes / 2;
        string status = $"Reading back {what} of disk '{disk.Name}' to verify it";
        context.Report((int)(100 * verifyStart / totalWork), status);
        long hashed = 0;
        await VerifyImageAsync(vault, point, d, image, new Progress(bytes =>
            context.Report((int)(100 * (verifyStart + Math.Min(disk.SizeBytes, hashed += bytes) / 2) / totalWork), status)), ct).ConfigureAwait(false);
        return image;
    }

    /// <summary>
    /// Reads the image back through QEMU and compares its block-hash table's digest with the point's: the image must hold
    /// exactly the disk (an image rounded up to whole 512-byte sectors must read zeros past the disk's end).
    /// </summary>
    internal static async Task VerifyImageAsync(AsrVault vault, AsrRecoveryPoint point, ExportDisk d, string image, IProgress<long>? progress, CancellationToken ct)
    {
        var disk = d.Disk;
        string what = $"The {DiskImageFormats.DisplayName(d.Format)} image written for disk '{disk.Name}' of {point}";
        AsrException Failed(string why) => new(AsrErrorIds.DiskImageFailed, AsrErrorKind.InvalidData,
            $"{what} did not read back as the point: {why}. The point itself verified (its raw export matched), so the conversion or the destination's storage " +
            $"failed: check the installed qemu-utils and the destination, and export again (or use -Format Raw).", disk.Name);
        using var reader = await RecoveredImageFile.OpenAsync(image, d.Format, disk.SizeBytes, ct).ConfigureAwait(false);
        if (reader.Size != disk.SizeBytes)
            throw Failed($"it holds {reader.ImageSize:N0} bytes, not the disk's {disk.SizeBytes:N0}");
        if (reader.ImageSize > disk.SizeBytes)
        {
            var tail = new byte[reader.ImageSize - disk.SizeBytes];
            await reader.ReadAsync(disk.SizeBytes, tail, ct).ConfigureAwait(false);
            if (tail.AsSpan().ContainsAnyExcept((byte)0))
                throw Failed($"the {tail.Length} byte(s) past the disk's end (sector rounding) are not zeros");
        }
        var table = await DiskChecksums.HashAsync(reader, disk.SizeBytes, disk.BlockSize, vault.HashSeed, progress, ct).ConfigureAwait(false);
        if (Replication.TrackerTables.HashSegments.DigestOf(table, disk) != disk.ContentDigest)
            throw Failed($"content digest {Replication.TrackerTables.HashSegments.DigestOf(table, disk)} != {disk.ContentDigest}");
    }

    /// <summary>
    /// Removes what an earlier, interrupted export left at <paramref name="staging"/>: a raw ".partial" file, or the staging
    /// directory of a converted disk with the files the export writes there (a directory holding anything else stays: IOException).
    /// </summary>
    private static void RemoveStaging(string staging, string fileName)
    {
        if (File.Exists(staging))
        {
            File.Delete(staging);
            return;
        }
        if (!Directory.Exists(staging)) return;
        File.Delete(Path.Combine(staging, fileName + RawSuffix));
        File.Delete(Path.Combine(staging, fileName));
        string converter = Path.Combine(staging, fileName + PartialSuffix);
        if (Directory.Exists(converter))
        {
            File.Delete(Path.Combine(converter, fileName));
            Directory.Delete(converter);
        }
        Directory.Delete(staging);
    }

    private static async Task ExportDiskAsync(AsrVault vault, AsrRecoveryPoint point, RecoveryPointDisk disk, string partial, long doneBytes, long totalBytes, JobContext context)
    {
        using var reader = await RecoveryPointDiskReader.OpenAsync(vault, point, disk.DiskId, context.CancellationToken).ConfigureAwait(false);
        var table = BlockHashTable.Zero(disk.SizeBytes, disk.BlockSize, vault.HashSeed);
        using (var handle = File.OpenHandle(partial, FileMode.Create, FileAccess.ReadWrite, FileShare.None))
        {
            RandomAccess.SetLength(handle, disk.SizeBytes);
            // Whole pages of an extent go past the page cache (Linux; see DirectFileWriter), the rest through it; the
            // FlushToDisk below makes both durable.
            using var direct = Replication.Sources.Linux.DirectFileWriter.TryOpen(handle);
            long diskDone = 0;
            var gate = new object();
            await reader.ForEachExtentAsync(async (segments, plain, ct) =>
            {
                foreach (var seg in segments)
                {
                    reader.HashSegment(seg, plain, table);
                    var (from, length) = reader.SegmentRange(seg);
                    long offset = seg.FirstBlock * disk.BlockSize;
                    if (direct is null || !direct.TryWrite(offset, plain.AsSpan(from, length)))
                        await RandomAccess.WriteAsync(handle, plain.AsMemory(from, length), offset, ct).ConfigureAwait(false);
                    // Extents are written in parallel: counting and reporting under one lock keeps the reports in order.
                    lock (gate)
                    {
                        diskDone += length;
                        context.Report((int)(100 * (doneBytes + Math.Min(diskDone, disk.SizeBytes)) / totalBytes), $"Exporting disk '{disk.Name}' of {point}");
                    }
                }
            }, context.CancellationToken).ConfigureAwait(false);
            RandomAccess.FlushToDisk(handle);
            context.Logger.LogInformation("Disk '{Disk}' of {Point}: {Direct:N0} of {Written:N0} bytes written past the page cache (O_DIRECT)",
                disk.Name, point, direct?.BytesWritten ?? 0, diskDone);
        }
        if (Replication.TrackerTables.HashSegments.DigestOf(table, disk) != disk.ContentDigest)
            throw new AsrException(AsrErrorIds.RecoveryPointVerificationFailed, AsrErrorKind.InvalidData,
                $"Disk '{disk.Name}' of point {point} did not verify after export: content digest {Replication.TrackerTables.HashSegments.DigestOf(table, disk)} != {disk.ContentDigest}.", disk.Name);
    }

    private sealed class Progress(Action<long> onReport) : IProgress<long>
    {
        public void Report(long value) => onReport(value);
    }
}
