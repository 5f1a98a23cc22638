using AsrModule.Engine.Items;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Replication.Tracking;

/// <summary>Picks the tracker an item's source allows: QEMU's dirty bitmaps for a running guest, a hash scan otherwise.</summary>
public static class ChangeTrackers
{
    public static async Task<IChangeTracker> OpenAsync(AsrProtectedItem item, ILogger logger, CancellationToken cancellationToken) =>
        item.QmpSocketPath is null
            ? new HashScanTracker()
            : await Qemu.QemuDirtyBitmapTracker.OpenAsync(item, logger, cancellationToken).ConfigureAwait(false);
}
