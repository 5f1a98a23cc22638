using AsrModule.Engine.Items;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Security;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Replication.TrackerTables;

/// <summary>Reads a disk's tracker at a point in either format: a map and segments (format 3) or one whole table (before).</summary>
internal static class StoredTrackers
{
    /// <summary>
    /// The tracker of <paramref name="disk"/> at <paramref name="point"/> as a cycle's baseline: a format-3 map (segments
    /// read later, one at a time) or an older point's whole table; null when the object is missing.
    /// <see cref="InvalidDataException"/> or a <see cref="Errors.AsrException"/> when it does not read.
    /// </summary>
    /// <summary>The object the tracker of <paramref name="disk"/> at <paramref name="point"/> starts from: its map (format 3) or its whole table.</summary>
    public static string KeyOf(string itemId, ProtectedDisk disk, AsrRecoveryPoint point) =>
        point.FormatVersion >= 3 && point.AttemptId is { } attempt
            ? VaultLayout.TrackerMap(itemId, disk.DiskId, point.Sequence, attempt)
            : VaultLayout.Tracker(itemId, disk.DiskId, point.Sequence, point.AttemptId);

    public static async Task<TrackerBaseline?> OpenAsync(AsrVault vault, string itemId, ProtectedDisk disk, AsrRecoveryPoint point, CancellationToken ct)
    {
        if (point.FormatVersion >= 3 && point.AttemptId is { } attempt)
        {
            string key = VaultLayout.TrackerMap(itemId, disk.DiskId, point.Sequence, attempt);
            var sealedMap = await vault.Store.ReadAllAsync(key, ct).ConfigureAwait(false);
            if (sealedMap is null) return null;
            var map = TrackerMap.Decode(MetadataSealer.Open(sealedMap, vault.Key, key), disk.SizeBytes, disk.BlockSize, point.Sequence);
            return new TrackerBaseline.Stored(map, new TrackerSegmentReader(vault.Store, vault.Key, itemId, disk.DiskId), vault.HashSeed);
        }
        string tableKey = VaultLayout.Tracker(itemId, disk.DiskId, point.Sequence, point.AttemptId);
        var sealedTable = await vault.Store.ReadAllAsync(tableKey, ct).ConfigureAwait(false);
        if (sealedTable is null) return null;
        return new TrackerBaseline.Table(BlockHashTable.FromBytes(MetadataSealer.Open(sealedTable, vault.Key, tableKey), disk.SizeBytes, disk.BlockSize, vault.HashSeed));
    }

    /// <summary>
    /// The whole table of <paramref name="disk"/> at <paramref name="point"/> in memory (8 bytes per block): what a
    /// planned failover compares the quiet source with. Null when the tracker is missing.
    /// </summary>
    public static async Task<BlockHashTable?> ReadWholeAsync(AsrVault vault, string itemId, ProtectedDisk disk, AsrRecoveryPoint point, CancellationToken ct)
    {
        var baseline = await OpenAsync(vault, itemId, disk, point, ct).ConfigureAwait(false);
        if (baseline is null) return null;
        var table = new BlockHashTable(disk.SizeBytes, disk.BlockSize, vault.HashSeed);
        for (int s = 0; s < baseline.SegmentCount; s++)
        {
            long first = (long)s * baseline.SegmentBlocks;
            await baseline.LoadAsync(s, table.Hashes.AsMemory((int)first, HashSegments.BlocksIn(baseline.BlockCount, baseline.SegmentBlocks, s)), ct).ConfigureAwait(false);
        }
        return table;
    }
}
