using AsrModule.Engine.Items;
using AsrModule.Engine.Replication.Tracking.Reflink;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Replication.Tracking;

/// <summary>
/// Picks the tracker an item's source allows, best first: QEMU's dirty bitmaps for a running guest (QMP); a reflink
/// clone for image files on XFS (reflink=1) or btrfs; a stopped qcow2 image's persistent dirty bitmaps; a live hash scan otherwise (its points are CrashConsistent
/// only when nothing wrote during the read).
/// </summary>
public static class ChangeTrackers
{
    public static async Task<IChangeTracker> OpenAsync(AsrProtectedItem item, ILogger logger, CancellationToken cancellationToken)
    {
        if (item.QmpSocketPath is not null)
            return await Qemu.QemuDirtyBitmapTracker.OpenAsync(item, logger, cancellationToken).ConfigureAwait(false);
        string? whyNot = "clones are made on Linux only";
        if (OperatingSystem.IsLinux() && ReflinkCloneTracker.TryOpen(item, logger, out whyNot) is { } reflink)
            return reflink;
        if (Qcow2.Qcow2BitmapTracker.Applies(item)) return new Qcow2.Qcow2BitmapTracker(logger);
        logger.LogDebug("Item {Item} is read live: {WhyNot}", item.Name, whyNot);
        return new HashScanTracker();
    }

    /// <summary>
    /// The capture method an item gets and the consistency it can reach, in words (stored on the item when it is
    /// protected and after every cycle, shown by Get-AsrProtectedItem).
    /// </summary>
    public static (string Method, string Reachable) Describe(AsrProtectedItem item)
    {
        if (item.QmpSocketPath is not null)
            return ("QemuDirtyBitmap", "CrashConsistent at every point (QEMU captures all disks in one transaction); AppConsistent with a freeze script");
        string whyNot;
        if (item.Disks.Any(d => d.IsBlockDevice))
            whyNot = "a block device cannot be captured point-in-time here (no device-mapper snapshots); ";
        else if (!OperatingSystem.IsLinux())
            whyNot = "clones are made on Linux only; ";
        else if (item.Disks.Select(d => ReflinkCloneTracker.ProbeProblem(item, d)).FirstOrDefault(p => p is not null) is { } problem)
            whyNot = problem + "; ";
        else
            return ("ReflinkClone", "CrashConsistent at every point (each disk's image cloned at the instant; " +
                (item.Disks.All(d => d.SourceFormat is null or "raw") ? "changed ranges from the clones' extent maps" : "a VMDK/VHDX/qcow2/VDI clone read through qemu-nbd, unallocated clusters skipped") +
                "); AppConsistent with a freeze script, held for the clone only");
        if (Qcow2.Qcow2BitmapTracker.Applies(item))
            return ("Qcow2Bitmap", "read live through qemu-nbd, only the ranges the image's persistent dirty bitmap marked since the previous point (a stopped image; " +
                "a running VM's image is read whole: protect a running guest with -QmpSocket); CrashConsistent when nothing writes during the read, else Inconsistent");
        return ("HashScan", "read live: " + whyNot + "CrashConsistent only when nothing writes during the read (checked by the file's size, mtime and ctime, " +
            "or a device's write counters in /sys/block), else Inconsistent; AppConsistent with a freeze script that stops the writers for the whole read");
    }
}
