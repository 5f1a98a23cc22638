using AsrModule.Engine.Errors;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.RecoveryPoints;

/// <summary>
/// Writes every disk of a recovery point to files, bit-exact, in parallel (each stored extent is
/// read and decoded once, then its live segments are written at their offsets; never-written and
/// trimmed ranges stay sparse). The rebuilt block-hash table must match the point's content digest.
/// </summary>
public static class RecoveryPointExporter
{
    /// <summary>
    /// Checks what an export would do (disks, target files) and throws if it must not run; call before
    /// starting a job so a refused export leaves no trace.
    /// </summary>
    public static (List<RecoveryPointDisk> Disks, List<string> Targets) Plan(AsrRecoveryPoint point, string destinationDirectory, bool force, IReadOnlyCollection<string>? diskFilter,
        Storage.IVaultStore? vaultStore = null)
    {
        Storage.OutputLocation.EnsureAllowed(destinationDirectory, vaultStore, AsrErrorIds.ExportDestinationInvalid, "Export destination");
        if (diskFilter is { Count: > 0 })
            foreach (var f in diskFilter)
                if (!point.Disks.Any(d => string.Equals(f, d.Name, StringComparison.OrdinalIgnoreCase) || f == d.DiskId))
                    throw new AsrException(AsrErrorIds.DiskNotFound, AsrErrorKind.ObjectNotFound,
                        $"Recovery point {point} has no disk '{f}'. Its disks: {string.Join(", ", point.Disks.Select(d => d.Name))}.", f);
        var disks = point.Disks.Where(d => diskFilter is null || diskFilter.Count == 0
            || diskFilter.Any(f => string.Equals(f, d.Name, StringComparison.OrdinalIgnoreCase) || f == d.DiskId)).ToList();
        // Disk names come from the vault: each must be a plain file name that stays inside the destination.
        string manifestKey = VaultLayout.PointManifest(point.ItemId, point.Sequence);
        var targets = disks.Select(d => VaultRecordChecks.JoinInside(destinationDirectory, d.Name, "", manifestKey)).ToList();
        if (File.Exists(destinationDirectory))
            throw new AsrException(AsrErrorIds.ExportDestinationExists, AsrErrorKind.InvalidArgument,
                $"'{destinationDirectory}' is a file; -Destination must be a directory.", destinationDirectory);
        if (!force)
            foreach (var t in targets)
                if (File.Exists(t))
                    throw new AsrException(AsrErrorIds.ExportDestinationExists, AsrErrorKind.ResourceExists,
                        $"'{t}' already exists. Choose an empty destination or use -Force to overwrite it.", t);
        return (disks, targets);
    }

    public static async Task<List<string>> ExportAsync(AsrVault vault, AsrRecoveryPoint point, string destinationDirectory, bool force,
        IReadOnlyCollection<string>? diskFilter, JobContext context)
    {
        // The caller's copy of the point may predate a rebase by retention; the pin re-reads it and keeps it.
        await using var pin = await PointPin.AcquireAsync(vault, point, "Export", context.CancellationToken).ConfigureAwait(false);
        point = pin.Point;
        var (disks, targets) = Plan(point, destinationDirectory, force, diskFilter, vault.Store);
        Directory.CreateDirectory(destinationDirectory);
        long totalBytes = Math.Max(1, disks.Sum(d => d.SizeBytes));
        long doneBytes = 0;
        // All disks are written and verified as .partial files first, then renamed together: a failed
        // or cancelled export never leaves a machine made of disks from different points.
        var partials = targets.Select(t => t + ".partial").ToList();
        try
        {
            for (int i = 0; i < disks.Count; i++)
            {
                await ExportDiskAsync(vault, point, disks[i], partials[i], doneBytes, totalBytes, context).ConfigureAwait(false);
                doneBytes += disks[i].SizeBytes;
                context.Report((int)(100 * doneBytes / totalBytes), $"Exported disk '{disks[i].Name}' ({disks[i].SizeBytes:N0} bytes), verified");
            }
        }
        catch (Exception ex)
        {
            foreach (var p in partials) File.Delete(p);
            if (DamagedPointMarker.IsDamage(ex)) await DamagedPointMarker.MarkAsync(vault, point, ex, "Export", context.Logger).ConfigureAwait(false);
            throw;
        }
        for (int i = 0; i < disks.Count; i++) File.Move(partials[i], targets[i], overwrite: true);
        context.Report(100, $"Exported {disks.Count} disk(s) of {point} to '{destinationDirectory}', verified");
        return targets;
    }

    private static async Task ExportDiskAsync(AsrVault vault, AsrRecoveryPoint point, RecoveryPointDisk disk, string partial, long doneBytes, long totalBytes, JobContext context)
    {
        using var reader = await RecoveryPointDiskReader.OpenAsync(vault, point, disk.DiskId, context.CancellationToken).ConfigureAwait(false);
        var table = BlockHashTable.Zero(disk.SizeBytes, disk.BlockSize, vault.HashSeed);
        using (var handle = File.OpenHandle(partial, FileMode.Create, FileAccess.ReadWrite, FileShare.None))
        {
            RandomAccess.SetLength(handle, disk.SizeBytes);
            long diskDone = 0;
            var gate = new object();
            await reader.ForEachExtentAsync(async (segments, plain, ct) =>
            {
                foreach (var seg in segments)
                {
                    reader.HashSegment(seg, plain, table);
                    var (from, length) = reader.SegmentRange(seg);
                    await RandomAccess.WriteAsync(handle, plain.AsMemory(from, length), seg.FirstBlock * disk.BlockSize, ct).ConfigureAwait(false);
                    // Extents are written in parallel: counting and reporting under one lock keeps the reports in order.
                    lock (gate)
                    {
                        diskDone += length;
                        context.Report((int)(100 * (doneBytes + Math.Min(diskDone, disk.SizeBytes)) / totalBytes), $"Exporting disk '{disk.Name}' of {point}");
                    }
                }
            }, context.CancellationToken).ConfigureAwait(false);
            RandomAccess.FlushToDisk(handle);
        }
        if (table.Digest() != disk.ContentDigest)
            throw new AsrException(AsrErrorIds.RecoveryPointVerificationFailed, AsrErrorKind.InvalidData,
                $"Disk '{disk.Name}' of point {point} did not verify after export: content digest {table.Digest()} != {disk.ContentDigest}.", disk.Name);
    }
}
